"""The driver's per-video bookkeeping: turn the stream of removed chunks into finished videos.

As rows arrive, a video's segment is dispatched (a Ray task) as soon as every chunk it
reads is staged; a staged chunk is deleted once every segment reading it is encoded; when
all segments exist the mux task writes the final file; then the manifest row is written
and the staging directory removed. This replaces a ``groupby`` barrier, so the first
videos finish while later ones are still being removed. Chunks arrive one per block, in
whatever order the actor pool finishes them, so the first segments of a long video are
encoded while its later chunks are still being removed on other actors.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from clear_ray import storage
from clear_ray.catalog import InputVideo
from clear_ray.config import RemoveJobConfig
from clear_ray.manifest import ManifestRow
from clear_ray.pipeline.layout import VideoStaging

log = logging.getLogger(__name__)


@dataclass
class VideoProgress:
    video: InputVideo
    staging: VideoStaging
    output_uri: str
    comparison_uri: str | None
    previous_attempts: int
    started: float = field(default_factory=time.monotonic)
    segments: list | None = None  # chunking.Segment, once the plan row arrived
    staged: set[int] = field(default_factory=set)
    segments_done: set[int] = field(default_factory=set)
    segments_running: set[int] = field(default_factory=set)
    released: set[int] = field(default_factory=set)
    muxing: bool = False
    finished: bool = False
    failed: bool = False
    chunk_nodes: dict[int, str] = field(default_factory=dict)  # chunk index -> Ray node that staged it
    reused_chunks: set[int] = field(default_factory=set)  # found staged by the actor: not recomputed
    seconds: dict[str, float] = field(default_factory=lambda: {"plan": 0.0, "remove": 0.0, "stitch": 0.0, "mux": 0.0})


class Assembler:
    """Consumes pipeline rows (``on_row``) and finished tasks (``poll``); records results."""

    def __init__(self, config: RemoveJobConfig, videos: dict[str, VideoProgress], *, run_id: str,
                 model_fingerprint: str, config_fingerprint: str, backend: str,
                 record: Callable[[ManifestRow], None], task_cpus: float = 1.0):
        import ray

        from clear_ray.pipeline import tasks

        self.config = config
        self.options = config.storage.s3_storage_options()
        self.videos = videos
        self.run_id = run_id
        self.model_fingerprint = model_fingerprint
        self.config_fingerprint = config_fingerprint
        self.backend = backend
        self.record = record
        self.in_flight: dict[Any, tuple[str, str, int]] = {}  # ref -> (video key, "segment"/"mux", index)
        # Small tasks (one segment, x264 pinned to one thread) spread over the cluster.
        self._stitch = ray.remote(num_cpus=task_cpus, max_retries=2)(tasks.stitch_segment)
        self._mux = ray.remote(num_cpus=task_cpus, max_retries=2)(tasks.mux_video)

    # -- rows from the Ray Data stream ---------------------------------------------------
    def on_row(self, row: dict[str, Any]) -> None:
        progress = self.videos.get(row["video_key"])
        if progress is None or progress.finished:
            return  # a late chunk of a video that already failed
        kind = row["kind"]
        try:
            if kind == "failed":
                self._fail(progress, row["error"], row["error_kind"] or "transient")
            elif kind == "plan":
                self._on_plan(progress, row)
            elif kind == "chunk":
                index = int(row["chunk_index"])
                progress.staged.add(index)
                progress.seconds["remove"] += float(row["seconds"])
                progress.chunk_nodes[index] = str(row.get("node_id") or "")
                if row.get("reused"):
                    progress.reused_chunks.add(index)
            self._advance(progress)
        except Exception as error:  # e.g. the plan cannot be read back: this video only
            if not progress.finished:
                self._fail(progress, _task_error(error), "transient")

    def _on_plan(self, progress: VideoProgress, row: dict[str, Any]) -> None:
        from clear_ray.chunking import Segment
        from clear_ray.pipeline.tasks import read_plan

        plan = read_plan(progress.staging, self.options)
        detail = json.loads(row["detail"])
        progress.segments = [Segment.from_dict(s) for s in plan["segments"]]
        progress.staged.update(detail["staged_chunks"])
        progress.segments_done.update(detail["done_segments"])
        progress.seconds["plan"] += float(row["seconds"])

    # -- task bookkeeping -------------------------------------------------------------------
    def _advance(self, progress: VideoProgress) -> None:
        if progress.finished or progress.segments is None:
            return
        for segment in progress.segments:
            k = segment.index
            if k in progress.segments_done or k in progress.segments_running:
                continue
            if progress.staged.issuperset(segment.chunk_indices):
                ref = self._stitch.remote(self.config, progress.video.uri, progress.staging.root, k)
                self.in_flight[ref] = (progress.video.key, "segment", k)
                progress.segments_running.add(k)
        self._release_chunks(progress)
        if not progress.muxing and len(progress.segments_done) == len(progress.segments):
            ref = self._mux.remote(self.config, progress.video.uri, progress.staging.root, progress.output_uri,
                                   progress.comparison_uri)
            self.in_flight[ref] = (progress.video.key, "mux", -1)
            progress.muxing = True

    def _release_chunks(self, progress: VideoProgress) -> None:
        from clear_ray.chunking import chunks_releasable
        from clear_ray.staging import delete_staged_chunk, staged_chunk_uri

        for j in chunks_releasable(progress.segments, progress.segments_done) - progress.released:
            try:
                delete_staged_chunk(staged_chunk_uri(progress.staging.chunks_dir, j), storage_options=self.options)
            except OSError as error:  # clean-up only: the staging directory goes when the video is done
                log.warning("could not release chunk %d of %s: %s", j, progress.video.rel_path, error)
            progress.released.add(j)

    def busy(self) -> bool:
        return bool(self.in_flight)

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for dispatched tasks; handle every one that finished."""
        import ray

        if not self.in_flight:
            time.sleep(timeout)
            return
        ready, _ = ray.wait(list(self.in_flight), num_returns=len(self.in_flight), timeout=timeout)
        for ref in ready:
            key, what, index = self.in_flight.pop(ref)
            progress = self.videos[key]
            try:
                result = ray.get(ref)
            except Exception as error:
                if not progress.finished:
                    self._fail(progress, _task_error(error), _task_error_kind(error))
                continue
            if progress.finished:
                continue
            if what == "segment":
                progress.segments_running.discard(index)
                progress.segments_done.add(index)
                progress.seconds["stitch"] += float(result)
                self._advance(progress)
            else:
                progress.seconds["mux"] += float(result["seconds"])
                self._succeed(progress, result)

    # -- outcomes ----------------------------------------------------------------------------
    def _succeed(self, progress: VideoProgress, result: dict[str, Any]) -> None:
        progress.finished = True
        self.record(self._row(progress, "done", frames=result["frames"], fps=result["fps"], width=result["width"],
                              height=result["height"], duration_s=result["duration_s"],
                              output_uri=progress.output_uri, comparison_uri=progress.comparison_uri))
        self._remove_staging(progress)

    def _fail(self, progress: VideoProgress, error: str, kind: str) -> None:
        progress.finished = True
        progress.failed = True
        self.record(self._row(progress, "failed", error=error, error_kind=kind,
                              attempts=progress.previous_attempts + 1))
        if kind == "input":
            # Nothing staged for a broken file is worth keeping; transient failures keep
            # their staged chunks so the retry resumes at chunk granularity.
            self._remove_staging(progress)

    def _remove_staging(self, progress: VideoProgress) -> None:
        try:
            storage.remove_tree(progress.staging.input_dir, self.options)
        except OSError as error:  # the next run's clean-up removes what is left
            log.warning("could not remove staging of %s: %s", progress.video.rel_path, error)

    def _row(self, progress: VideoProgress, status: str, **fields: Any) -> ManifestRow:
        video = progress.video
        return ManifestRow(
            run_id=self.run_id, finished_at=time.time(), input_uri=video.uri, rel_path=video.rel_path,
            input_fingerprint=video.fingerprint, model_fingerprint=self.model_fingerprint,
            config_fingerprint=self.config_fingerprint, status=status, backend=self.backend,
            seconds_plan=progress.seconds["plan"], seconds_denoise=progress.seconds["remove"],
            seconds_stitch=progress.seconds["stitch"], seconds_mux=progress.seconds["mux"],
            seconds_total=time.monotonic() - progress.started, **fields)


def _task_error(error: BaseException) -> str:
    from clear_ray.pipeline.rows import one_line

    cause = getattr(error, "cause", None)  # RayTaskError wraps the original exception
    return one_line(cause if isinstance(cause, BaseException) else error)


def _task_error_kind(error: BaseException) -> str:
    from clear_ray.pipeline.plan_stage import error_kind

    cause = getattr(error, "cause", None)
    return error_kind(cause) if isinstance(cause, BaseException) else "transient"
