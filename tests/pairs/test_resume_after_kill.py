"""A make-pairs run killed mid-way resumes without rewriting any finished shard."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from clear_ray.pairs import read_index, read_pair
from clear_ray.pairs.job import run_make_pairs
from tests.pairs.helpers import pairs_config, shard_files


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_finished_shards(ray_cluster, make_clip, tmp_path):
    import ray

    src, dst = tmp_path / "clean", tmp_path / "pairs"
    src.mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_clip(name, frames=60, width=160, height=96).rename(src / name)
    flags = ["--window", "17", "--windows-per-video", "4", "--seed", "1"]
    command = ["clear-ray", "make-pairs", str(src), str(dst), *flags, "--max-actors", "1", "--quiet",
               "--address", ray.get_runtime_context().gcs_address]
    job = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    deadline = time.monotonic() + 300
    killed = False
    while time.monotonic() < deadline and job.poll() is None:
        if list(dst.glob("shards/*/meta.json")):
            os.killpg(job.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.05)
    job.wait(timeout=60)
    assert killed, f"the run ended before the kill point: {job.stdout.read().decode()[-3000:]}"
    time.sleep(3)  # Ray ends the dead driver's actors; a write in flight lands or not, atomically
    assert not (dst / "index.parquet").exists()

    done_before = {p.parent.name for p in dst.glob("shards/*/meta.json")}
    assert 1 <= len(done_before) < 8
    files_before = {k: v for k, v in shard_files(dst).items() if k.split("/")[1] in done_before}
    assert len(files_before) == 4 * len(done_before)  # complete: 3 frame archives + meta.json

    summary = run_make_pairs(pairs_config(str(src), str(dst), **{"windows.per_video": 4, "seed": 1}))
    assert summary.exit_code == 0
    assert summary.pairs_written == 8 - len(done_before)
    after = shard_files(dst)
    assert {k: after[k] for k in files_before} == files_before, "a finished shard was rewritten"
    rows = read_index(str(dst))
    assert len(rows) == 8 and {r["pair_id"] for r in rows} >= done_before
    for row in rows:
        assert read_pair(row, [0, 16]).clean_thwc_u8.shape == (2, 96, 160, 3)
