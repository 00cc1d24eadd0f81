"""A job killed mid-way resumes at chunk granularity; outputs are exact frame by frame.

The invariant a resumed run keeps: a chunk whose result was staged is never computed
again, so the only chunks computed twice are those in flight when the kill landed, i.e.
a chunk whose remover had returned but whose result was not yet staged when its actor
died. Each remover actor runs one chunk at a time and dies once, so at most one chunk per
actor of the killed run (``ray.max_actors``) is computed a second time, never a third,
and only a chunk that the killed run had started.
"""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from clear_ray.chunking import plan_chunks
from clear_ray.pipeline import run_remove_job
from clear_ray.testing.clips import write_barcode_clip
from clear_ray.testing.removers import read_barcode
from tests.pipeline.helpers import SEGMENT_FRAMES, job_config, stream_signature


def _staged_chunks(dst: Path) -> list[Path]:
    return list((dst / "_staging").glob("*/*/chunks/*")) if (dst / "_staging").exists() else []


@pytest.mark.slow
def test_killed_job_recomputes_at_most_the_chunks_in_flight(ray_cluster, make_clip, tmp_path):
    import ray

    src, dst = tmp_path / "src", tmp_path / "dst"
    specs = [dict(frames=25, width=64, height=48), dict(frames=33, width=80, height=48, pattern="testsrc"),
             dict(frames=29, width=64, height=64, fps="30000/1001"), dict(frames=21, width=96, height=48)]
    src.mkdir()
    for i, spec in enumerate(specs):
        make_clip(f"v{i}.mp4", **spec).rename(src / f"v{i}.mp4")
    calls, starts = tmp_path / "calls.log", tmp_path / "starts.log"
    actors = 1
    plugin = ["--backend", "identity"]
    env = dict(os.environ, CLEAR_RAY_REMOVER__PLUGIN="clear_ray.testing.removers:CountingRemover",
               CLEAR_RAY_CHUNKING__SEGMENT_FRAMES=str(SEGMENT_FRAMES),
               CLEAR_RAY_REMOVER__PLUGIN_OPTIONS=f'{{"calls_file": "{calls}", "starts_file": "{starts}", '
                                                 f'"sleep_s": 0.4}}')
    address = ray.get_runtime_context().gcs_address
    command = ["clear-ray", "remove", str(src), str(dst), *plugin, "--chunk-size", "9", "--chunk-overlap", "2",
               "--preset", "ultrafast", "--max-actors", str(actors), "--address", address, "--quiet", "--lease-ttl", "3"]
    job = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    # Kill once at least one final output exists and an unfinished video has staged chunks.
    deadline = time.monotonic() + 240
    killed_at = None
    while time.monotonic() < deadline and job.poll() is None:
        outputs = [p for p in dst.glob("v*.mp4")]
        unfinished = {p.parts[-4] for p in _staged_chunks(dst)}
        if outputs and unfinished:
            os.killpg(job.pid, signal.SIGKILL)
            killed_at = (len(outputs), len(unfinished))
            break
        time.sleep(0.05)
    job.wait(timeout=60)
    assert killed_at, f"job ended before the kill point: {job.stdout.read().decode()[-3000:]}"
    assert not list(dst.glob("**/*.part*")) and not list(dst.glob("**/.*.tmp"))
    for output in dst.glob("v*.mp4"):  # whatever is under a final name is complete
        assert stream_signature(str(output))["frames"] > 0

    # Whatever the killed run's actors still did after the kill has happened by now
    # (Ray ends a dead driver's actors); its started chunks are all the candidates.
    time.sleep(2.0)
    started_by_killed_run = {line.split()[0] for line in starts.read_text().splitlines()}
    starts.unlink()

    # Re-run in-process with the same settings (they are part of the resume key):
    # finishes only what is missing.
    # The killed run's DST lease (3 s TTL) is taken over once it expired.
    config = job_config(str(src), str(dst), wait_for_lease=True, **{
        "remover.plugin": "clear_ray.testing.removers:CountingRemover",
        "remover.plugin_options": {"calls_file": str(calls), "starts_file": str(starts), "sleep_s": 0.4}})
    summary = run_remove_job(config)
    assert summary.exit_code == 0
    statuses = Counter(row.status for row in summary.rows)
    # A video whose output landed just before the kill, but whose manifest row did not, is
    # re-muxed from its staged segments (no denoising): it may count as done, not skipped.
    assert statuses["done"] + statuses["skipped"] == len(specs) and statuses["done"] >= len(specs) - killed_at[0]
    for i in range(len(specs)):
        assert stream_signature(str(dst / f"v{i}.mp4")) == stream_signature(str(src / f"v{i}.mp4"))
    chunk_calls = Counter(line.split()[0] for line in calls.read_text().splitlines())
    expected_chunks = sum(len(plan_chunks(s["frames"], 9, 2)) for s in specs)
    assert len(chunk_calls) == expected_chunks  # every chunk computed
    twice = {digest for digest, count in chunk_calls.items() if count > 1}
    assert max(chunk_calls.values()) <= 2, f"a chunk was computed three times: {chunk_calls}"
    assert len(twice) <= actors, f"more chunks recomputed ({len(twice)}) than were in flight: {twice}"
    assert twice <= started_by_killed_run, "a chunk the killed run never started was computed twice"
    assert not (dst / "_staging").exists() or not any((dst / "_staging").iterdir())


def test_every_output_frame_is_the_right_source_frame(ray_cluster, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_barcode_clip(src / "barcode.mp4", frames=47, fps="25", gop=7)
    config = job_config(str(src), str(dst), **{"remover.plugin": "clear_ray.testing.removers:BarcodeCopyRemover",
                                               "chunking.chunk_size": 13, "chunking.overlap": 5})
    assert run_remove_job(config).exit_code == 0
    import av

    with av.open(str(dst / "barcode.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    top = [read_barcode(f, row=0) for f in frames]  # untouched source pixels
    bottom = [read_barcode(f, row=f.shape[0] - 8) for f in frames]  # the remover's (blended) pixels
    assert top == list(range(47))
    assert bottom == list(range(47))
