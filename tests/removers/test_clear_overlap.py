"""The remover actor decodes the next chunk while the current one is on the model (for
backends with ``overlap_decode``, like CLEAR), on a real local Ray cluster: a decode starts
inside an earlier ``remove``, every chunk is removed once, and every output frame is the
right one."""

from __future__ import annotations

from collections import Counter

from clear_ray.chunking import chunk_source_indices, plan_chunks
from clear_ray.config import RemoverConfig
from clear_ray.pipeline import run_remove_job
from clear_ray.pipeline.remove_stage import actor_pool_concurrency
from clear_ray.testing.clips import write_barcode_clip
from clear_ray.testing.removers import read_barcode
from tests.pipeline.helpers import job_config

FRAMES, CHUNK, OVERLAP = 47, 13, 5


def test_only_overlap_backends_get_two_concurrent_calls_per_actor(tmp_path):
    threaded = {"max_concurrent_calls_per_actor": 2, "enable_true_multi_threading": True}
    assert actor_pool_concurrency(RemoverConfig(backend="clear")) == threaded  # no weights needed
    assert actor_pool_concurrency(RemoverConfig(backend="identity")) == {}
    assert actor_pool_concurrency(RemoverConfig(backend="lite")) == {}
    assert actor_pool_concurrency(RemoverConfig(
        plugin="clear_ray.testing.overlap_remover:OverlapRecordingRemover")) == threaded


def test_the_next_chunk_decodes_while_the_current_one_is_removed(ray_cluster, tmp_path):
    src, dst, events_file = tmp_path / "src", tmp_path / "dst", tmp_path / "events.log"
    write_barcode_clip(src / "barcode.mp4", frames=FRAMES, fps="25", gop=7)
    config = job_config(str(src), str(dst), **{
        "remover.plugin": "clear_ray.testing.overlap_remover:OverlapRecordingRemover",
        "remover.plugin_options": {"events_file": str(events_file), "wait_s": 60},
        "chunking.chunk_size": CHUNK, "chunking.overlap": OVERLAP})  # one actor (job_config)
    assert run_remove_job(config).exit_code == 0

    events = [line.split() for line in events_file.read_text().splitlines()]
    assert not [e for e in events if e[0] == "no-overlap"], "no chunk was decoded while another was removed"
    times = {(kind, int(key)): float(t) for kind, key, t in events}
    removes = [int(key) for kind, key, _ in events if kind == "remove-start"]
    decodes = [float(t) for kind, _, t in events if kind == "decode"]
    # Run one after another, the second chunk's decode would start after the first remove
    # ended; here it starts before (the remover waits for it, so this is not a race).
    assert sum(t < times["remove-end", removes[0]] for t in decodes) >= 2

    # Every chunk removed exactly once (keyed by its window's first source frame) ...
    chunks = plan_chunks(FRAMES, CHUNK, OVERLAP)
    assert Counter(removes) == Counter(int(chunk_source_indices(c)[0]) for c in chunks)
    # ... and every output frame is its own source frame, through the overlaps.
    import av

    with av.open(str(dst / "barcode.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert [read_barcode(f, row=0) for f in frames] == list(range(FRAMES))
    assert [read_barcode(f, row=f.shape[0] - 8) for f in frames] == list(range(FRAMES))
