"""Stage II fixtures: pairs made by the real make-pairs job, a tiny model in the real layout."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def stage2_pairs(ray_cluster, tmp_path_factory) -> str:
    from clear_ray.config import load_config
    from clear_ray.pairs.config import MakePairsConfig
    from clear_ray.pairs.job import run_make_pairs
    from clear_ray.testing.clips import ClipSpec, write_clip

    root = tmp_path_factory.mktemp("stage2-pairs")
    src = root / "clean"
    src.mkdir()
    write_clip(src / "a.mp4", ClipSpec(frames=24, width=96, height=64, container="mp4"))
    write_clip(src / "b.mp4", ClipSpec(frames=24, width=96, height=64, container="mp4", pattern="testsrc"))
    config = load_config(MakePairsConfig, env={}, overrides={
        "src": str(src), "dst": str(root / "pairs"), "windows.frames": 9, "windows.per_video": 2,
        "synthesis.text_free_fraction": 0.0, "seed": 0, "quiet": True})
    summary = run_make_pairs(config)
    assert summary.exit_code == 0
    return str(root / "pairs")


@pytest.fixture(scope="session")
def stage2_model_dir(tmp_path_factory) -> Path:
    from clear_ray.testing.tiny_wan import write_tiny_model_dir

    return write_tiny_model_dir(tmp_path_factory.mktemp("stage2-model") / "model")


def stage2_config(pairs: str, model_dir: Path, output: str, **overrides):
    """Tiny and fast: 5-frame windows at 32x32 (2 latent frames of 4x4), rank 4, alpha 8."""
    from clear_ray.config import load_config
    from clear_ray.training.stage2.config import Stage2Config

    settings = {"pairs": pairs, "model_dir": str(model_dir), "output": output, "frames": 5, "width": 32,
                "height": 32, "batch_size": 2, "max_steps": 4, "lora.rank": 4, "lora.alpha": 8.0,
                "optim.lr": 0.01, "gradient_checkpointing": False, "run.name": "t", "run.report_every": 1,
                "run.checkpoint_every": 2, "run.max_failures": 0}
    settings.update(overrides)
    return load_config(Stage2Config, env={}, overrides=settings)
