"""Stage I training fixtures: a pairs dataset made by the real make-pairs job on real S3,
and the tiny network settings every Ray Train test runs."""

from __future__ import annotations

import uuid

import pytest

TINY_MODEL = {"backbone": {"block": "basic", "layers": [1, 1, 1, 1], "width": 8},
              "fpn_channels": 16, "feature_channels": 16}


@pytest.fixture(scope="module")
def s3_pairs(s3_server, ray_cluster, tmp_path_factory):
    """``(bucket_uri, pairs_uri)``: six short clips -> 17-frame windows with exact alpha,
    about a third of the videos in the dev split."""
    from clear_ray.config import load_config
    from clear_ray.pairs.config import MakePairsConfig
    from clear_ray.pairs.job import run_make_pairs
    from clear_ray.testing.clips import ClipSpec, write_clip

    src = tmp_path_factory.mktemp("clean")
    patterns = ["testsrc2", "testsrc", "smptehdbars", "testsrc2", "rgbtestsrc", "testsrc"]
    for i, pattern in enumerate(patterns):
        write_clip(src / f"clip{i}.mp4", ClipSpec(frames=34, width=160, height=128, pattern=pattern, audio_tracks=0))
    bucket = f"stage1-{uuid.uuid4().hex[:10]}"
    fs = s3_server.filesystem()
    fs.mkdir(bucket)
    config = load_config(MakePairsConfig, env={}, overrides={
        "src": str(src), "dst": f"s3://{bucket}/pairs", "windows.frames": 17, "windows.per_video": 2,
        "synthesis.dev_fraction": 0.34, "synthesis.text_free_fraction": 0.0, "quiet": True,
        **storage_overrides(s3_server, "storage")})
    run_make_pairs(config)
    yield f"s3://{bucket}", f"s3://{bucket}/pairs"
    fs.rm(bucket, recursive=True)


def storage_overrides(s3_server, prefix: str) -> dict:
    return {f"{prefix}.endpoint_url": s3_server.endpoint_url, f"{prefix}.region": "us-east-1",
            f"{prefix}.access_key_id": s3_server.access_key, f"{prefix}.secret_access_key": s3_server.secret_key}


def tiny_settings(s3_server, pairs: str, output: str, **overrides) -> dict:
    """Dotted settings for a tiny Stage I run on the session's 2-CPU cluster."""
    settings = {"pairs": pairs, "output": output, "batch_size": 4, "max_steps": 40, "seed": 0,
                "model": TINY_MODEL, "data.height": 96, "data.width": 128, "data.dev_frames_per_pair": 3,
                "optim.lr": 3e-3, "optim.warmup_steps": 2, "run.report_every": 10, "run.checkpoint_every": 10,
                "run.workers": 2, **storage_overrides(s3_server, "run.storage")}
    settings.update(overrides)
    return settings
