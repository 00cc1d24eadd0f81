"""The job on other clusters: a CPU-only head (a laptop), `ray job submit`, and inputs that
kill or hang their worker."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clear_ray.manifest import read_manifest_table
from clear_ray.pipeline import run_remove_job
from tests.pipeline.helpers import job_config, stream_signature

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ray_job_submit_on_a_cpu_only_cluster(cpu_only_ray_head, make_clip, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    make_clip("one.mp4", frames=17).rename(src / "one.mp4")
    make_clip("two.mkv", frames=11, width=80, height=48, fps="30000/1001").rename(src / "two.mkv")
    command = ["ray", "job", "submit", "--address", cpu_only_ray_head.dashboard_url, "--working-dir", str(REPO),
               "--runtime-env", str(REPO / "jobs" / "runtime_env.yaml"), "--",
               "python", "jobs/remove_subtitles.py", str(src), str(dst), "--backend", "identity",
               "--chunk-size", "9", "--chunk-overlap", "2", "--preset", "ultrafast", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "succeeded" in result.stdout + result.stderr
    for name in ("one.mp4", "two.mkv"):
        assert stream_signature(str(dst / name)) == stream_signature(str(src / name))


@pytest.mark.slow
def test_a_gpu_backend_on_a_cluster_without_gpu_waits_then_stops_unless_cpu_is_allowed(cpu_only_ray_head, make_clip,
                                                                                       tmp_path):
    # A plugin that asks for a GPU (wants_gpu) never silently runs on CPU, and never waits forever.
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    make_clip("clip.mp4", frames=12).rename(src / "clip.mp4")
    env = dict(os.environ, CLEAR_RAY_REMOVER__PLUGIN="clear_ray.testing.removers:GpuHungryIdentity",
               CLEAR_RAY_RAY__GPU_WAIT_S="3")
    command = ["clear-ray", "remove", str(src), str(dst), "--address", cpu_only_ray_head.address,
               "--chunk-size", "9", "--chunk-overlap", "2", "--preset", "ultrafast"]
    refused = subprocess.run(command + ["--shared-filesystem"], capture_output=True, text=True, timeout=300, env=env)
    assert refused.returncode == 2, (refused.stdout + refused.stderr)[-4000:]
    assert "waiting up to 3 s for the autoscaler to add one" in refused.stderr
    error_lines = [line for line in refused.stderr.splitlines() if line.startswith("clear-ray remove: ")]
    assert len(error_lines) == 1 and "none joined the cluster within 3 s" in error_lines[0], refused.stderr[-2000:]
    assert not (dst / "clip.mp4").exists()

    allowed = subprocess.run(command + ["--allow-cpu-fallback"], capture_output=True, text=True, timeout=300, env=env)
    assert allowed.returncode == 0, (allowed.stdout + allowed.stderr)[-4000:]
    assert "no GPU in the cluster: running clear_ray.testing.removers:GpuHungryIdentity on CPU" in allowed.stderr
    assert "done clip.mp4" in allowed.stdout
    assert stream_signature(str(dst / "clip.mp4")) == stream_signature(str(src / "clip.mp4"))


@pytest.mark.slow
def test_an_input_that_hangs_its_worker_fails_alone(ray_cluster, make_clip, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    make_clip("fine.mp4", frames=12).rename(src / "fine.mp4")
    make_clip("poison.mp4", frames=12, width=96, height=48).rename(src / "poison.mp4")
    config = job_config(str(src), str(dst), **{
        "remover.plugin": "clear_ray.testing.removers:HangingRemover",
        "remover.plugin_options": {"hang_on_width": 96}, "ray.chunk_timeout_s": 4})
    summary = run_remove_job(config)
    rows = {row.rel_path: row for row in summary.rows}
    assert rows["fine.mp4"].status == "done"
    assert rows["poison.mp4"].status == "failed"
    assert "timed out after 4 s" in rows["poison.mp4"].error
    assert summary.exit_code == 1
    # The broken input is quarantined: the next run does not hang on it again.
    again = run_remove_job(config)
    assert {row.rel_path: row.status for row in again.rows} == {"fine.mp4": "skipped", "poison.mp4": "quarantined"}
    assert again.exit_code == 0
    assert read_manifest_table(str(dst)).num_rows == 4
