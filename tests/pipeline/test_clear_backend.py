"""`clear-ray remove --backend clear` end to end through Ray, on a tiny random-weight
Wan2.1-Fun-Control model saved in the real file layout (the GPU actor falls back to CPU)."""

import json
import subprocess

import numpy as np
import pytest

from clear_ray.manifest import read_manifest_table
from tests.pipeline.helpers import stream_signature


@pytest.mark.slow
def test_clear_backend_through_the_cli_and_ray(ray_cluster, tiny_clear_model, make_clip, tmp_path):
    import av
    import ray

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    make_clip("talk.mp4", frames=9, width=64, height=48).rename(src / "talk.mp4")
    command = ["clear-ray", "remove", str(src), str(dst), "--backend", "clear",
               "--model-dir", str(tiny_clear_model.model_dir), "--lora", str(tiny_clear_model.lora_path),
               "--steps", "1", "--chunk-size", "5", "--chunk-overlap", "1", "--preset", "ultrafast",
               "--address", ray.get_runtime_context().gcs_address]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "done talk.mp4" in result.stdout

    assert stream_signature(str(dst / "talk.mp4")) == stream_signature(str(src / "talk.mp4"))
    [row] = read_manifest_table(str(dst)).to_pylist()
    assert row["backend"] == "clear" and row["status"] == "done" and row["model_fingerprint"].startswith("clear-")
    runtime = json.loads(row["remover_runtime"])  # what the actor resolved: logged per video
    assert runtime["device"] == "cpu" and runtime["dtype"] == "float32" and runtime["attention"].startswith("cpu:")
    with av.open(str(src / "talk.mp4")) as a, av.open(str(dst / "talk.mp4")) as b:
        before = np.stack([f.to_ndarray(format="rgb24") for f in a.decode(video=0)]).astype(float)
        after = np.stack([f.to_ndarray(format="rgb24") for f in b.decode(video=0)]).astype(float)
    assert np.abs(before - after).mean() > 5  # the (random) model really ran on every chunk


def test_a_missing_model_file_stops_the_job_with_one_line_before_any_work(tiny_clear_model, make_clip, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_clip("talk.mp4", frames=5).rename(src / "talk.mp4")
    result = subprocess.run(["clear-ray", "remove", str(src), str(tmp_path / "dst"), "--backend", "clear",
                             "--model-dir", str(tiny_clear_model.model_dir), "--lora", str(tmp_path / "missing.pt")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "missing.pt" in result.stderr and "LoRA" in result.stderr
    assert not (tmp_path / "dst").exists()
