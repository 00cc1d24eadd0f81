"""A remover actor SIGKILLed in the middle of a video: Ray restarts it and retries its
chunk; the run finishes with exact output, every chunk computed once, nothing failed or
quarantined."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import pytest

from clear_ray.chunking import plan_chunks
from clear_ray.pipeline import run_remove_job
from tests.pipeline.helpers import job_config, stream_signature


def _lines(path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_sigkill_of_a_remover_actor_mid_video(ray_cluster, make_clip, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    make_clip("film.mp4", frames=57, width=64, height=48).rename(src / "film.mp4")
    calls, starts = tmp_path / "calls.log", tmp_path / "starts.log"
    config = job_config(str(src), str(dst), **{
        "remover.plugin": "clear_ray.testing.removers:CountingRemover",
        "remover.plugin_options": {"calls_file": str(calls), "starts_file": str(starts), "sleep_s": 2.0},
        "ray.max_actors": 2, "ray.num_cpus_per_actor": 0.5})
    outcome: dict = {}
    job = threading.Thread(target=lambda: outcome.setdefault("summary", run_remove_job(config)), daemon=True)
    job.start()

    # Once two chunks are done, kill the actor of a chunk that has just started: it dies
    # inside the remover's sleep, before the chunk is finished, so no finished work is lost.
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and job.is_alive() and time.monotonic() < deadline:
        finished = {line[0] for line in _lines(calls)}
        running = [line for line in _lines(starts) if line[0] not in finished]
        if len(finished) >= 2 and running:
            digest, pid = running[-1][0], int(running[-1][1])
            os.kill(pid, signal.SIGKILL)
            killed = (digest, pid)
        time.sleep(0.02)
    job.join(timeout=400)
    assert killed, "the video finished before an actor could be killed"
    summary = outcome["summary"]
    assert [row.status for row in summary.rows] == ["done"] and summary.exit_code == 0
    assert stream_signature(str(dst / "film.mp4")) == stream_signature(str(src / "film.mp4"))
    computed = Counter(line[0] for line in _lines(calls))
    assert len(computed) == len(plan_chunks(57, 9, 2)), "a chunk is missing"
    assert max(computed.values()) == 1, f"a staged chunk was computed twice: {computed}"
    assert killed[0] in computed  # the interrupted chunk was retried on a fresh actor
    assert int(next(line[1] for line in _lines(calls) if line[0] == killed[0])) != killed[1]
