"""The production stages of `clear-ray remove`, run for one video in this process.

Tests and benchmarks that need no cluster call exactly what the Ray job runs: the plan
stage (``PlanVideo``), the remove stage (``RemoverActor``, one chunk row per call), the
driver-dispatched ``stitch_segment`` and ``mux_video`` tasks, with the Assembler's order:
a segment is stitched as soon as its chunks are staged, and a staged chunk is deleted as
soon as every segment reading it is encoded. There is no second implementation to drift.
"""

from __future__ import annotations

from dataclasses import dataclass

from clear_ray.config import RemoveJobConfig


@dataclass(frozen=True)
class StagesReport:
    output_uri: str
    num_frames: int
    num_chunks: int
    num_segments: int
    max_staged_chunks: int  # staged chunks on storage at any one time
    reused_chunks: int  # chunks the remove stage found already staged (not recomputed)


class StageFailed(RuntimeError):
    """A stage reported a failed row (its one-line error)."""


def run_stages(config: RemoveJobConfig, input_uri: str, output_uri: str, staging_root: str) -> StagesReport:
    """Plan, remove, stitch and mux ``input_uri`` into ``output_uri`` (staging under ``staging_root``)."""
    import pandas as pd

    from clear_ray.chunking import Segment, chunks_releasable
    from clear_ray.pipeline.layout import VideoStaging
    from clear_ray.pipeline.plan_stage import PlanVideo
    from clear_ray.pipeline.remove_stage import RemoverActor
    from clear_ray.pipeline.tasks import mux_video, read_plan, stitch_segment
    from clear_ray.staging import delete_staged_chunk, list_staged_chunks, staged_chunk_uri

    options = config.storage.s3_storage_options()
    staging = VideoStaging(staging_root)
    rows = PlanVideo(config)({"uri": input_uri, "video_key": "video", "staging_root": staging_root})
    _raise_failed(rows[0])
    plan = read_plan(staging, options)
    segments = [Segment.from_dict(s) for s in plan["segments"]]
    actor = RemoverActor(config, num_cpus=config.ray.num_cpus_per_actor)

    import json

    detail = json.loads(rows[0]["detail"])  # a resumed video: what an earlier run left staged
    staged, done, released = set(detail["staged_chunks"]), set(detail["done_segments"]), set()
    max_staged = reused = 0

    def advance() -> None:
        for segment in segments:
            if segment.index not in done and staged.issuperset(segment.chunk_indices):
                stitch_segment(config, input_uri, staging_root, segment.index)
                done.add(segment.index)
        for j in chunks_releasable(segments, done) - released:
            delete_staged_chunk(staged_chunk_uri(staging.chunks_dir, j), storage_options=options)
            released.add(j)

    advance()
    for row in rows[1:]:
        out = actor(pd.DataFrame([row])).iloc[0].to_dict()
        _raise_failed(out)
        staged.add(int(out["chunk_index"]))
        reused += bool(out["reused"])
        max_staged = max(max_staged, len(list_staged_chunks(staging.chunks_dir, storage_options=options)))
        advance()
    mux_video(config, input_uri, staging_root, output_uri, None)
    return StagesReport(output_uri=output_uri, num_frames=plan["info"]["num_frames"], num_chunks=len(plan["chunks"]),
                        num_segments=len(segments), max_staged_chunks=max_staged, reused_chunks=reused)


def _raise_failed(row: dict) -> None:
    if row["kind"] == "failed":
        raise StageFailed(row["error"])


def stage_chunks(config: RemoveJobConfig, input_uri: str, staging_root: str) -> dict:
    """Only the plan and remove stages: every chunk staged under ``staging_root``; returns the plan."""
    import pandas as pd

    from clear_ray.pipeline.layout import VideoStaging
    from clear_ray.pipeline.plan_stage import PlanVideo
    from clear_ray.pipeline.remove_stage import RemoverActor
    from clear_ray.pipeline.tasks import read_plan

    rows = PlanVideo(config)({"uri": input_uri, "video_key": "video", "staging_root": staging_root})
    _raise_failed(rows[0])
    actor = RemoverActor(config, num_cpus=config.ray.num_cpus_per_actor)
    for row in rows[1:]:
        _raise_failed(actor(pd.DataFrame([row])).iloc[0].to_dict())
    return read_plan(VideoStaging(staging_root), config.storage.s3_storage_options())
