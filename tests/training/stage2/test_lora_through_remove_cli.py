"""The whole user path on CPU: `python -m clear_ray.testing.tiny_wan` writes the model,
`clear-ray train-stage2` trains on make-pairs pairs and exports the LoRA, and `clear-ray
remove --backend clear --lora EXPORT` (the job on the local Ray cluster) applies it.

What is compared: the CLI's output video against the trainer's own denoising
(``Stage2Engine.denoise``, unfused PEFT LoRA) of the same source window, and against the
base model's (the same engine before training). The output is composited off (the model's
pixels everywhere) and encoded losslessly in 4:4:4 (``--crf 0`` on a yuv444p source), and
both sides decode with the job's own decoder, so what separates the CLI from the trainer
is the RGB -> YUV -> RGB round trip of the encode (8-bit limited range: about a level):
the CLI must sit within that of the trained model and far from the base. The float-level
equality of the exported LoRA with the trainer (1e-4, through ``load_remover``, the loader
the job's actors use) is ``test_train_stage2.py``'s.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from tests.training.stage2.conftest import stage2_config

pytestmark = pytest.mark.slow

TRAIN = {"frames": 5, "width": 32, "height": 32, "batch_size": 2, "lora": {"rank": 4, "alpha": 8.0},
         "optim": {"lr": 0.02}, "gradient_checkpointing": False,
         "run": {"name": "t", "report_every": 1, "checkpoint_every": 4, "max_failures": 0}}


def _decode_rgb(path) -> np.ndarray:
    """All frames as the job's actors and its encoder see them (the project's accurate RGB)."""
    from clear_ray.media.decode import decode

    return decode(str(path), 0, 5)


def test_exported_lora_through_train_and_remove_clis_matches_the_trainer(ray_cluster, stage2_pairs, make_clip,
                                                                         tmp_path):
    import ray

    from clear_ray.manifest import read_manifest_table
    from clear_ray.removers.clear import video_to_u8
    from clear_ray.training.stage2 import checkpoint as checkpoints
    from clear_ray.training.stage2.engine import Stage2Engine

    address = ray.get_runtime_context().gcs_address
    # 1. The tiny model in the real file layout, through its command.
    model_dir = tmp_path / "model"
    subprocess.run([sys.executable, "-m", "clear_ray.testing.tiny_wan", str(model_dir)], check=True,
                   capture_output=True, timeout=300)

    # 2. Train 4 steps through the CLI; it exports the LoRA.
    output = tmp_path / "stage2"
    (tmp_path / "stage2.yaml").write_text(yaml.safe_dump(TRAIN))
    trained = subprocess.run([sys.executable, "-m", "clear_ray", "train-stage2", "--pairs", stage2_pairs,
                              "--model-dir", str(model_dir), "--output", str(output), "--max-steps", "4",
                              "--config", str(tmp_path / "stage2.yaml"), "--address", address],
                             capture_output=True, text=True, timeout=900)
    assert trained.returncode == 0, trained.stderr[-3000:]
    lora = output / "export" / "clear_lora.safetensors"
    assert "step 4" in trained.stdout and lora.is_file()

    # 3. Remove through the CLI with that LoRA: one 5-frame window at the model size, the
    #    model's pixels everywhere, lossless 4:4:4.
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    make_clip("talk.mp4", frames=5, width=32, height=32, pix_fmt="yuv444p").rename(src / "talk.mp4")
    (tmp_path / "remove.yaml").write_text(yaml.safe_dump({"remover": {"clear": {"tiled_vae": False, "seed": 3}}}))
    removed = subprocess.run(["clear-ray", "remove", str(src), str(dst), "--backend", "clear", "--model-dir",
                              str(model_dir), "--lora", str(lora), "--steps", "2", "--no-composite",
                              "--chunk-size", "5", "--chunk-overlap", "1", "--crf", "0", "--preset", "ultrafast",
                              "--config", str(tmp_path / "remove.yaml"), "--address", address],
                             capture_output=True, text=True, timeout=600)
    assert removed.returncode == 0, (removed.stdout + removed.stderr)[-3000:]
    [row] = read_manifest_table(str(dst)).to_pylist()
    assert row["status"] == "done" and json.loads(row["remover_runtime"])["vae_tiled"] is False
    cli_u8 = _decode_rgb(dst / "talk.mp4").astype(np.float64)

    # 4. The trainer's own denoising of the same window, trained (the CLI run's last
    #    checkpoint) and base (the same engine before loading it).
    config = stage2_config(stage2_pairs, model_dir, str(output), lora={"rank": 4, "alpha": 8.0})
    engine = Stage2Engine(config)
    window = _decode_rgb(src / "talk.mp4")
    base_u8 = video_to_u8(engine.denoise(window, steps=2, seed=3), 32, 32).astype(np.float64)
    [checkpoint] = [d for d in glob.glob(str(output / "runs" / "t" / "checkpoint_*")) if os.path.isdir(d)]
    assert checkpoints.load(checkpoint, module=engine.module)[0] == 4
    trained_u8 = video_to_u8(engine.denoise(window, steps=2, seed=3), 32, 32).astype(np.float64)

    to_trained, to_base = np.abs(cli_u8 - trained_u8), np.abs(cli_u8 - base_u8)
    print(f"CLI output vs the trainer's denoising: mean {to_trained.mean():.3f}, max {to_trained.max():.0f} levels; "
          f"vs the base model: mean {to_base.mean():.3f} levels")
    # Measured: mean 0.72, max 4 levels from the trainer, 21.9 from the base. An 8-bit
    # limited-range BT.601 RGB -> YUV 4:4:4 -> RGB round trip alone costs 0.41 / 2 on random
    # colours; a wrong LoRA scale or no LoRA lands tens of levels away.
    assert to_trained.mean() < 1.0 and to_trained.max() <= 4
    assert to_base.mean() > 10 * to_trained.mean()  # the LoRA is applied, not the base
