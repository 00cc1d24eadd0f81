"""`clear-ray remove`, top to bottom: catalog → decisions → Ray Data graph → assembly → manifest."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from clear_ray import storage
from clear_ray.catalog import InputVideo, list_inputs, output_uri_for
from clear_ray.config import RemoveJobConfig, config_fingerprint
from clear_ray.manifest import Manifest, ManifestRow
from clear_ray.pipeline.assembly import Assembler, VideoProgress
from clear_ray.pipeline.layout import STAGING_DIR, VideoStaging
from clear_ray.pipeline.report import Reporter
from clear_ray.resume import decide

# Settings that change the bytes a job writes (not where or how fast it runs).
OUTPUT_SETTINGS = {"chunking", "output", "remover"}


@dataclass
class JobSummary:
    run_id: str
    rows: list[ManifestRow] = field(default_factory=list)
    seconds: float = 0.0
    # rel_path -> chunk index -> Ray node id that staged it, for the chunks computed or
    # reused in this run (where the work ran; tests check the spread over nodes).
    chunk_nodes: dict[str, dict[int, str]] = field(default_factory=dict)
    seconds_ray_start: float | None = None  # connecting to / starting the Ray cluster

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row.status == status)

    @property
    def exit_code(self) -> int:
        """1 when any input failed in this run; quarantined inputs keep a nightly run green."""
        return 1 if self.count("failed") else 0


def run_remove_job(config: RemoveJobConfig) -> JobSummary:
    started = time.monotonic()
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    options = config.storage.s3_storage_options()
    reporter = Reporter(quiet=config.quiet)

    # 1. What is there, and what each input needs.
    videos = list_inputs(config.src, config.extensions, storage_options=options, exclude_prefix=config.dst)
    if config.fingerprint == "content":
        videos = _with_content_fingerprints(videos, options)
    from clear_ray.removers import model_fingerprint

    model_fp = model_fingerprint(config.remover)
    config_fp = config_fingerprint(config, include=OUTPUT_SETTINGS)
    backend = config.remover.resolved_backend()
    manifest = Manifest(config.dst, run_id, storage_options=options)
    summary = JobSummary(run_id=run_id)

    def record(row: ManifestRow) -> None:
        manifest.record(row)
        summary.rows.append(row)
        reporter.video_finished(row, done_so_far=len(summary.rows), total=len(videos))

    latest = manifest.latest_rows()
    existing_outputs = _existing_files(config.dst, options)
    to_process: dict[str, VideoProgress] = {}
    for video in videos:
        output_uri = output_uri_for(video, config.dst, _output_extension(video))
        decision = decide(video, latest.get(video.uri), model_fingerprint=model_fp, config_fingerprint=config_fp,
                          output_exists=storage.filesystem(output_uri, options)[1] in existing_outputs,
                          force=config.force, retry_failed=config.retry_failed, max_attempts=config.max_attempts)
        if decision.action == "process":
            staging = VideoStaging.for_video(config.dst, video.key, model_fp, config_fp)
            comparison = _comparison_uri(output_uri) if config.output.comparison else None
            to_process[video.key] = VideoProgress(video, staging, output_uri, comparison, decision.previous_attempts)
            continue
        previous = latest[video.uri]
        record(ManifestRow(
            run_id=run_id, finished_at=time.time(), input_uri=video.uri, rel_path=video.rel_path,
            input_fingerprint=video.fingerprint, model_fingerprint=previous.model_fingerprint,
            config_fingerprint=previous.config_fingerprint, backend=previous.backend,
            status="skipped" if decision.action == "skip" else "quarantined",
            output_uri=previous.output_uri, comparison_uri=previous.comparison_uri,
            error=previous.error if decision.action == "quarantined" else None,
            error_kind=previous.error_kind, attempts=decision.previous_attempts, frames=previous.frames,
            fps=previous.fps, width=previous.width, height=previous.height, duration_s=previous.duration_s))
    _fail_output_collisions(to_process, record, run_id, model_fp, config_fp, backend)
    _drop_stale_staging(config.dst, {p.video.key for p in to_process.values()}, options)

    # 2. Denoise and assemble on Ray.
    if to_process:
        reporter.starting(len(to_process), len(videos), backend)
        summary.seconds_ray_start = _run_on_ray(config, to_process, dict(run_id=run_id, model_fingerprint=model_fp,
                                             config_fingerprint=config_fp, backend=backend, record=record))
        summary.chunk_nodes = {p.video.rel_path: dict(p.chunk_nodes) for p in to_process.values()}

    # 3. One Parquet file for this run (and any killed run's pending rows); no empty
    #    staging left behind.
    manifest.compact()
    _drop_stale_staging(config.dst, {p.video.key for p in to_process.values() if not _finished_ok(p)}, options)
    summary.seconds = time.monotonic() - started
    reporter.summary(summary.rows, backend=backend, seconds=summary.seconds, ray_start_s=summary.seconds_ray_start)
    return summary


def _run_on_ray(config: RemoveJobConfig, videos: dict[str, VideoProgress], assembler_args: dict) -> float:
    """Remove and assemble ``videos`` on Ray; returns the seconds taken to reach the cluster."""
    from clear_ray.pipeline.graph import connect
    from clear_ray.pipeline.resources import is_fixed_size, release_resource_request, settle_resources

    fixed_size = is_fixed_size(config)
    started = time.monotonic()
    connect(config)
    ray_start_s = time.monotonic() - started
    resources = settle_resources(config, fixed_size=fixed_size)
    try:
        _stream(config, videos, assembler_args, resources)
    finally:
        if not fixed_size:
            release_resource_request()
    return ray_start_s


def _stream(config: RemoveJobConfig, videos: dict[str, VideoProgress], assembler_args: dict, resources) -> None:
    from clear_ray.pipeline.graph import build_dataset

    assembler = Assembler(config, videos, task_cpus=resources.task_cpus, **assembler_args)
    dataset = build_dataset(config, [
        {"uri": p.video.uri, "video_key": key, "staging_root": p.staging.root} for key, p in videos.items()],
        resources)

    # Ray Data's iterator blocks; a thread feeds its rows to this loop, which also
    # collects finished stitch/mux tasks in between.
    rows: queue.Queue = queue.Queue()
    finished = object()

    def pump() -> None:
        try:
            for row in dataset.iter_rows():
                rows.put(row)
        except BaseException as error:  # surfaced in the main thread
            rows.put(error)
        finally:
            rows.put(finished)

    threading.Thread(target=pump, daemon=True, name="ray-data-rows").start()
    stream_open = True
    while stream_open or assembler.busy():
        while stream_open:
            try:
                item = rows.get(timeout=0.05 if assembler.busy() else 0.5)
            except queue.Empty:
                break
            if item is finished:
                stream_open = False
            elif isinstance(item, BaseException):
                raise item
            else:
                assembler.on_row(item)
        assembler.poll(timeout=0.05 if stream_open else 0.5)
    for progress in videos.values():
        if not progress.finished:  # a video whose rows never completed it: never silent
            assembler._fail(progress, "pipeline ended before the video was assembled", "transient")


def _output_extension(video: InputVideo) -> str:
    from clear_ray.media import output_extension_for

    return output_extension_for(video.rel_path)


def _comparison_uri(output_uri: str) -> str:
    stem, _, ext = output_uri.rpartition(".")
    return f"{stem}.comparison.{ext}"


def _existing_files(dst: str, options: dict) -> set[str]:
    fs, path = storage.filesystem(dst, options)
    return set(fs.find(path)) if fs.exists(path) else set()


def _with_content_fingerprints(videos: list[InputVideo], options: dict) -> list[InputVideo]:
    """Hash every input's bytes in parallel Ray tasks (never serially on the driver)."""
    import dataclasses

    import ray

    from clear_ray.catalog import content_fingerprint

    hash_remote = ray.remote(num_cpus=1)(content_fingerprint)
    hashes = ray.get([hash_remote.remote(v.uri, storage_options=options) for v in videos])
    return [dataclasses.replace(v, fingerprint=h) for v, h in zip(videos, hashes)]


def _fail_output_collisions(videos: dict[str, VideoProgress], record, run_id: str, model_fp: str,
                            config_fp: str, backend: str) -> None:
    # a.webm and a.mkv would both become a.mkv: fail the later one rather than overwrite.
    seen: dict[str, str] = {}
    for key in list(videos):
        progress = videos[key]
        other = seen.setdefault(progress.output_uri, progress.video.rel_path)
        if other != progress.video.rel_path:
            del videos[key]
            record(ManifestRow(
                run_id=run_id, finished_at=time.time(), input_uri=progress.video.uri,
                rel_path=progress.video.rel_path, input_fingerprint=progress.video.fingerprint,
                model_fingerprint=model_fp, config_fingerprint=config_fp, backend=backend, status="failed",
                error=f"output {progress.output_uri} would overwrite the output of {other}; rename one input",
                error_kind="input", attempts=progress.previous_attempts + 1))


def _finished_ok(progress: VideoProgress) -> bool:
    return progress.finished and not progress.failed


def _drop_stale_staging(dst: str, live_keys: set[str], options: dict) -> None:
    """Remove staging of input versions that are not (or no longer) being processed, and
    the staging directory itself once nothing is left in it."""
    fs, path = storage.filesystem(storage.join(dst, STAGING_DIR), options)
    if not fs.exists(path):
        return
    entries = [e for e in fs.ls(path, detail=False) if e.rstrip("/") != path.rstrip("/")]
    for entry in entries:
        if entry.rstrip("/").rsplit("/", 1)[-1] not in live_keys:
            fs.rm(entry, recursive=True)
    if not live_keys & {e.rstrip("/").rsplit("/", 1)[-1] for e in entries}:
        fs.rm(path, recursive=True)
