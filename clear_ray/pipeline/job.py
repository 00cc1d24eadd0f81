"""`clear-ray remove`, top to bottom: catalog → decisions → Ray Data graph → assembly → manifest."""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clear_ray import storage
from clear_ray.catalog import InputVideo, list_inputs, output_uri_for
from clear_ray.config import RemoveJobConfig, config_fingerprint
from clear_ray.lease import DstLease
from clear_ray.manifest import Manifest, ManifestRow
from clear_ray.pipeline.assembly import Assembler, VideoProgress
from clear_ray.pipeline.layout import STAGING_DIR, VideoStaging
from clear_ray.pipeline.poison import discard_markers
from clear_ray.pipeline.report import Reporter
from clear_ray.resume import decide

if TYPE_CHECKING:
    from clear_ray.pipeline.resources import ResourcePlan

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
    # rel_path -> {"last_chunk_s", "first_segment_s"}: seconds after the job started.
    timeline: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row.status == status)

    @property
    def exit_code(self) -> int:
        """1 when any input failed in this run; quarantined inputs keep a nightly run green."""
        return 1 if self.count("failed") else 0


def run_remove_job(config: RemoveJobConfig) -> JobSummary:
    """Raises LeaseHeld when another run writes DST (exit 3), LeaseLost when this run lost
    DST mid-run (exit 4); per-input problems are recorded, never raised."""
    started = time.monotonic()
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    options = config.storage.s3_storage_options()
    reporter = Reporter(quiet=config.quiet)

    # 1. The model (a bad model fails before DST is touched).
    from clear_ray.removers import model_fingerprint

    model_fp = model_fingerprint(config.remover)
    config_fp = config_fingerprint(config, include=OUTPUT_SETTINGS)
    backend = config.remover.resolved_backend()

    # 2. One writer per DST: everything below reads DST's state and writes only while this
    #    run holds the lease. (A bad SRC fails here, leaving nothing but the released lease.)
    lease = DstLease(config.dst, run_id, ttl_s=config.lease_ttl_s, storage_options=options)
    lease.acquire(wait=config.wait_for_lease, timeout_s=config.lease_wait_timeout_s)
    try:
        summary = _run_holding_lease(config, lease, model_fp, config_fp, backend, reporter, started)
    finally:
        lease.release()
    summary.seconds = time.monotonic() - started
    reporter.summary(summary.rows, backend=backend, seconds=summary.seconds, ray_start_s=summary.seconds_ray_start)
    return summary


def _run_holding_lease(config: RemoveJobConfig, lease: DstLease, model_fp: str, config_fp: str, backend: str,
                       reporter: Reporter, started: float) -> JobSummary:
    run_id = lease.run_id
    options = config.storage.s3_storage_options()
    manifest = Manifest(config.dst, run_id, storage_options=options)
    summary = JobSummary(run_id=run_id)

    # 3. What there is and what each input needs, from the consolidated manifest state.
    videos, to_process, decided = startup_decisions(config, manifest, model_fp, config_fp)

    def record(row: ManifestRow) -> None:
        lease.check()  # a run that lost DST writes nothing more
        if row.status == "failed" and row.error_kind == "storage":
            # Storage that stayed unreachable says nothing about the input: not an attempt.
            row = dataclasses.replace(row, attempts=max(0, row.attempts - 1))
        manifest.record(row)
        summary.rows.append(row)
        reporter.video_finished(row, done_so_far=len(summary.rows), total=len(videos))

    lease.check()
    manifest.record_many(decided)  # one file for every skipped / quarantined input
    for row in decided:
        summary.rows.append(row)
        reporter.video_finished(row, done_so_far=len(summary.rows), total=len(videos))
    _fail_output_collisions(to_process, record, run_id, model_fp, config_fp, backend)
    _tidy_staging(config.dst, {p.video.key for p in to_process.values()}, options)

    # 4. Remove and assemble on Ray.
    if to_process:
        reporter.starting(len(to_process), len(videos), backend)
        summary.seconds_ray_start = _run_on_ray(
            config, to_process, dict(run_id=run_id, model_fingerprint=model_fp, config_fingerprint=config_fp,
                                     backend=backend, record=record), lease=lease)
        summary.chunk_nodes = {p.video.rel_path: dict(p.chunk_nodes) for p in to_process.values()}
        summary.timeline = {p.video.rel_path: {"last_chunk_s": _since(p.last_chunk_at, started),
                                               "first_segment_s": _since(p.first_segment_at, started)}
                            for p in to_process.values()}

    # 5. Fold this run's rows (and any killed run's) into the manifest state; no empty
    #    staging directory left behind.
    lease.check()
    manifest.finalize()
    _drop_empty_staging_dir(config.dst)
    return summary


def startup_decisions(config: RemoveJobConfig, manifest: Manifest, model_fp: str, config_fp: str
                      ) -> tuple[list[InputVideo], dict[str, VideoProgress], list[ManifestRow]]:
    """A run's start-up: every input under SRC, the videos to process, and a manifest row
    for every other input (skipped, quarantined).

    Three independent reads (list SRC, read the manifest state, list DST) run at once: on
    an object store each is a round of LIST/GET requests whose latency then overlaps (their
    response parsing still shares one interpreter)."""
    options = config.storage.s3_storage_options()
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="startup") as pool:
        listing = pool.submit(list_inputs, config.src, config.extensions, storage_options=options,
                              exclude_prefix=config.dst)
        latest = pool.submit(manifest.latest_rows)
        existing_outputs = pool.submit(_existing_files, config.dst, options)
        videos = listing.result()
        if config.fingerprint == "content":
            videos = _with_content_fingerprints(videos, options)
        to_process, decided = decide_inputs(config, manifest.run_id, videos, latest.result(),
                                            existing_outputs.result(), model_fp, config_fp)
    return videos, to_process, decided


def decide_inputs(config: RemoveJobConfig, run_id: str, videos: list[InputVideo], latest: dict[str, ManifestRow],
                  existing_outputs: set[str], model_fp: str, config_fp: str
                  ) -> tuple[dict[str, VideoProgress], list[ManifestRow]]:
    """The videos to process, and a manifest row for every other input, from the manifest
    state (``latest``: the newest row per input URI) and the files under DST."""
    options = config.storage.s3_storage_options()
    dst_fs, _ = storage.filesystem(config.dst, options)  # one client, not one per input
    to_process: dict[str, VideoProgress] = {}
    decided: list[ManifestRow] = []
    for video in videos:
        output_uri = output_uri_for(video, config.dst, _output_extension(video))
        decision = decide(video, latest.get(video.uri), model_fingerprint=model_fp, config_fingerprint=config_fp,
                          output_exists=dst_fs._strip_protocol(output_uri) in existing_outputs,
                          force=config.force, retry_failed=config.retry_failed, max_attempts=config.max_attempts)
        if decision.action == "process":
            staging = VideoStaging.for_video(config.dst, video.key, model_fp, config_fp)
            comparison = _comparison_uri(output_uri) if config.output.comparison else None
            to_process[video.key] = VideoProgress(video, staging, output_uri, comparison, decision.previous_attempts)
            continue
        previous = latest[video.uri]
        decided.append(ManifestRow(
            run_id=run_id, finished_at=time.time(), input_uri=video.uri, rel_path=video.rel_path,
            input_fingerprint=video.fingerprint, model_fingerprint=previous.model_fingerprint,
            config_fingerprint=previous.config_fingerprint, backend=previous.backend,
            status="skipped" if decision.action == "skip" else "quarantined",
            output_uri=previous.output_uri, comparison_uri=previous.comparison_uri,
            error=previous.error if decision.action == "quarantined" else None,
            error_kind=previous.error_kind, attempts=decision.previous_attempts, frames=previous.frames,
            fps=previous.fps, width=previous.width, height=previous.height, duration_s=previous.duration_s))
    return to_process, decided


def _run_on_ray(config: RemoveJobConfig, videos: dict[str, VideoProgress], assembler_args: dict,
                lease: DstLease) -> float:
    """Remove and assemble ``videos`` on Ray; returns the seconds taken to reach the cluster."""
    from clear_ray.pipeline.graph import connect
    from clear_ray.pipeline.resources import is_fixed_size, release_resource_request, settle_resources

    fixed_size = is_fixed_size(config)
    started = time.monotonic()
    connect(config)
    ray_start_s = time.monotonic() - started
    resources = settle_resources(config, fixed_size=fixed_size)
    try:
        _stream(config, videos, assembler_args, resources, lease)
    finally:
        if not fixed_size:
            release_resource_request()
    return ray_start_s


def _stream(config: RemoveJobConfig, videos: dict[str, VideoProgress], assembler_args: dict,
            resources: "ResourcePlan", lease: DstLease) -> None:
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
        lease.check()
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


def _since(moment: float | None, started: float) -> float | None:
    return None if moment is None else moment - started


def _output_extension(video: InputVideo) -> str:
    from clear_ray.media import output_extension_for

    return output_extension_for(video.rel_path)


def _comparison_uri(output_uri: str) -> str:
    stem, _, ext = output_uri.rpartition(".")
    return f"{stem}.comparison.{ext}"


def _existing_files(dst: str, options: dict) -> set[str]:
    fs, path = storage.filesystem(dst, options)

    def find() -> set[str]:
        try:
            return set(fs.find(path))
        except FileNotFoundError:
            return set()

    return storage.retry(find, what=f"list DST {dst}")


def _with_content_fingerprints(videos: list[InputVideo], options: dict) -> list[InputVideo]:
    """Hash every input's bytes in parallel Ray tasks (never serially on the driver)."""
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


def _tidy_staging(dst: str, live_keys: set[str], options: dict) -> None:
    """Under the lease, before any work: remove staging of input versions this run does not
    process (stale versions, finished or quarantined inputs), and discard attempt markers
    that interrupted runs left behind (they are not worker deaths)."""
    staging_root = storage.join(dst, STAGING_DIR)
    fs, path = storage.filesystem(staging_root, options)

    def drop_stale() -> None:
        try:
            entries = [e for e in fs.ls(path, detail=False) if e.rstrip("/") != path.rstrip("/")]
        except FileNotFoundError:
            return
        stale = [e for e in entries if e.rstrip("/").rsplit("/", 1)[-1] not in live_keys]
        if stale:
            fs.rm(stale, recursive=True)

    storage.retry(drop_stale, what="remove stale staging")
    discard_markers(staging_root, options)


def _drop_empty_staging_dir(dst: str) -> None:
    """A local ``_staging`` left empty once every video finished (object stores have none).
    Each video's own staging is removed by the assembler when it finishes."""
    path = storage.join(dst, STAGING_DIR)
    if storage.is_remote(path) or not os.path.isdir(path):
        return
    for entry in os.listdir(path):
        entry_path = os.path.join(path, entry)
        if os.path.isdir(entry_path) and not any(os.scandir(entry_path)):
            os.rmdir(entry_path)
    if not os.listdir(path):
        os.rmdir(path)
