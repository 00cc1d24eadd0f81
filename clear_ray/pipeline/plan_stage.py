"""Stage 1 (Ray Data flat_map): probe one video, plan its chunks and segments, emit rows.

The plan is stored as ``plan.json`` in the video's staging directory (probing a long
video is a full demux scan; a resumed run reads the plan instead). Only chunks that some
unfinished segment still needs, and that are not staged yet, are emitted for denoising.
"""

from __future__ import annotations

import json
import time
from typing import Any

from clear_ray import storage
from clear_ray.config import RemoveJobConfig
from clear_ray.pipeline.layout import VideoStaging
from clear_ray.pipeline.poison import AttemptGuard, PoisonedInput
from clear_ray.pipeline.rows import make_row, one_line

# Worker deaths (crash, hang, out of memory) tolerated per item before it is failed.
MAX_WORKER_DEATHS = 2


def error_kind(error: BaseException) -> str:
    """'input' when the file itself is broken (retrying cannot help), 'storage' when storage
    was unreachable (never counted against the input), else 'transient'."""
    from clear_ray.media import MediaError, RemoteReadError

    if isinstance(error, PoisonedInput):
        return "input"
    if storage.is_transient(error):
        return "storage"
    if isinstance(error, MediaError) and not isinstance(error, RemoteReadError):
        return "input"
    return "transient"


class PlanVideo:
    """Callable for ``Dataset.flat_map``: one catalog row in, a plan row + chunk rows out."""

    def __init__(self, config: RemoveJobConfig):
        self.config = config
        self.storage_options = config.storage.s3_storage_options()

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        staging = VideoStaging(row["staging_root"])
        base = {"video_key": row["video_key"], "input_uri": row["uri"], "staging_root": staging.root}
        started = time.perf_counter()
        try:
            with AttemptGuard(staging.markers_dir, "plan", max_deaths=MAX_WORKER_DEATHS,
                              time_limit_s=self.config.ray.chunk_timeout_s, storage_options=self.storage_options):
                plan = self._load_or_make_plan(row["uri"], staging)
                staged, done_segments = self._existing_pieces(staging)
        except Exception as error:  # recorded on the video, never fails the job
            return [make_row(kind="failed", error=one_line(error), error_kind=error_kind(error), **base)]

        from clear_ray.chunking import Chunk, Segment

        segments = [Segment.from_dict(s) for s in plan["segments"]]
        needed = {c for s in segments if s.index not in done_segments for c in s.chunk_indices}
        detail = {"staged_chunks": sorted(staged & needed), "done_segments": sorted(done_segments)}
        rows = [make_row(kind="plan", seconds=time.perf_counter() - started, detail=json.dumps(detail), **base)]
        info_json = json.dumps(plan["info"])  # lets the actor decode without re-reading the header
        for chunk_dict in plan["chunks"]:
            chunk = Chunk.from_dict(chunk_dict)
            if chunk.index in needed and chunk.index not in staged:
                rows.append(make_row(kind="chunk", chunk_index=chunk.index, start=chunk.start, stop=chunk.stop,
                                     pad_before=chunk.pad_before, pad_after=chunk.pad_after,
                                     start_pts=int(plan["frame_pts"][chunk.start]), detail=info_json, **base))
        return rows

    def _load_or_make_plan(self, uri: str, staging: VideoStaging) -> dict[str, Any]:
        if storage.exists(staging.plan_uri, self.storage_options):
            return json.loads(storage.read_bytes(staging.plan_uri, self.storage_options))
        from clear_ray.chunking import plan_chunks, plan_segments
        from clear_ray.media import inspect

        # One demux scan gives the description and every frame's timestamp.
        info, frame_pts = inspect(uri, storage_options=self.storage_options, max_pixels=self.config.output.max_pixels)
        chunks = plan_chunks(info.num_frames, self.config.chunking.chunk_size, self.config.chunking.overlap)
        plan = {
            "info": info.model_dump(mode="json"),
            "frame_pts": [int(p) for p in frame_pts],
            "chunks": [c.to_dict() for c in chunks],
            "segments": [s.to_dict() for s in plan_segments(chunks, info.num_frames,
                                                              self.config.chunking.segment_frames)],
        }
        storage.write_bytes_atomic(staging.plan_uri, json.dumps(plan).encode(), self.storage_options)
        return plan

    def _existing_pieces(self, staging: VideoStaging) -> tuple[set[int], set[int]]:
        from clear_ray.staging import list_staged_chunks

        staged = set(list_staged_chunks(staging.chunks_dir, storage_options=self.storage_options))  # indices
        fs, path = storage.filesystem(staging.segments_dir, self.storage_options)
        done: set[int] = set()
        try:
            names = storage.retry(fs.ls, path, detail=False, what=f"list {staging.segments_dir}")
        except FileNotFoundError:
            names = []
        for name in names:
            index = VideoStaging.segment_index_of(name)
            if index is not None:
                done.add(index)
        return staged, done


__all__ = ["PlanVideo", "PoisonedInput", "error_kind", "MAX_WORKER_DEATHS"]
