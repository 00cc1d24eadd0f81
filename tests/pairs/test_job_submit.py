"""`ray job submit ... jobs/make_pairs.py` on a CPU-only cluster (the way a cluster runs it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clear_ray.pairs import read_index

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_make_pairs_through_ray_job_submit(cpu_only_ray_head, make_clip, tmp_path):
    src, dst = tmp_path / "clean", tmp_path / "pairs"
    src.mkdir()
    make_clip("one.mp4", frames=21, width=96, height=64).rename(src / "one.mp4")
    command = ["ray", "job", "submit", "--address", cpu_only_ray_head.dashboard_url, "--working-dir", str(REPO),
               "--runtime-env", str(REPO / "jobs" / "runtime_env.yaml"), "--",
               "python", "jobs/make_pairs.py", str(src), str(dst), "--window", "9", "--windows-per-video", "2",
               "--languages", "en,ar", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    rows = read_index(str(dst))
    assert [(r["start_frame"], r["frames"]) for r in rows] == [(0, 9), (12, 9)] or \
        sorted((r["start_frame"], r["frames"]) for r in rows) == [(0, 9), (12, 9)]
