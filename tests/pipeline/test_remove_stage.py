"""The remove stage's actor, called as Ray Data calls it (one chunk row per batch): it feeds
the remover the chunk's padded window, stages the real frames, and never recomputes a
chunk that is already staged."""

from __future__ import annotations

import numpy as np
import pandas as pd

from clear_ray.removers.base import RemovalResult
from tests.pipeline.helpers import job_config

SEEN: list[np.ndarray] = []  # windows the recording remover got, in this process


class RecordingRemover:
    name = "recording"
    wants_gpu = False

    def __init__(self, config=None, device="cpu"):
        pass

    def fingerprint(self) -> str:
        return "recording-v1"

    def remove(self, frames_thwc_u8):
        SEEN.append(frames_thwc_u8.copy())
        mask = np.zeros(frames_thwc_u8.shape[:3], np.float32)
        mask[:, :4] = 1.0
        return RemovalResult(frames_thwc_u8, mask)


def _plan_rows(config, source, staging_root):
    from clear_ray.pipeline.plan_stage import PlanVideo

    return PlanVideo(config)({"uri": source, "video_key": "k", "staging_root": staging_root})


def test_actor_feeds_the_padded_window_and_never_recomputes_a_staged_chunk(make_clip, tmp_path):
    from clear_ray.chunking import chunk_source_indices, plan_chunks
    from clear_ray.media import decode
    from clear_ray.pipeline.layout import VideoStaging
    from clear_ray.pipeline.remove_stage import RemoverActor
    from clear_ray.staging import read_staged_chunk, staged_chunk_uri

    source = str(make_clip("src.mp4", frames=7, audio_tracks=0))
    config = job_config(source, str(tmp_path / "dst"), **{
        "remover.plugin": "tests.pipeline.test_remove_stage:RecordingRemover", "chunking.chunk_size": 21,
        "chunking.overlap": 4})
    staging = VideoStaging(str(tmp_path / "st"))
    plan_row, chunk_row = _plan_rows(config, source, staging.root)
    (chunk,) = plan_chunks(7, 21, 4)  # 7 real frames reflection-padded to 9
    actor = RemoverActor(config, num_cpus=1)
    SEEN.clear()

    out = actor(pd.DataFrame([plan_row, chunk_row]))
    assert list(out["kind"]) == ["plan", "chunk"]  # plan rows pass through untouched
    assert not out.at[1, "reused"] and out.at[1, "node_id"]
    decoded = decode(source, 0, 7, rgb="fast")  # the remover's input needs no exact RGB (composite on)
    assert len(SEEN) == 1 and np.array_equal(SEEN[0], decoded[chunk_source_indices(chunk)])
    staged = read_staged_chunk(staged_chunk_uri(staging.chunks_dir, 0))
    assert len(staged.frames) == 7
    assert np.array_equal(staged.frames[6].pixels_mc_u8, decoded[6, :4].reshape(-1, 3))

    # The same row again (Ray retrying a task whose actor died after staging): reused.
    again = actor(pd.DataFrame([chunk_row]))
    assert again.at[0, "kind"] == "chunk" and again.at[0, "reused"]
    assert len(SEEN) == 1, "a staged chunk was computed again"
