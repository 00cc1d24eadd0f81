"""`clear-ray make-pairs`, top to bottom: catalog → decisions → Ray Data (plan windows →
burn-in pool → shards) → manifest → index.parquet."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from clear_ray.catalog import InputVideo, list_inputs
from clear_ray.config import config_fingerprint
from clear_ray.manifest import Manifest, ManifestRow
from clear_ray.pairs.config import MakePairsConfig
from clear_ray.pairs.index import list_done_pairs, write_index
from clear_ray.pairs.plan import SYNTH_VERSION, pair_id, video_split, window_starts
from clear_ray.resume import decide

# Settings that change the pairs a job writes (not where or how fast).
OUTPUT_SETTINGS = {"seed", "windows", "synthesis", "from_pairs"}
BACKEND = "make-pairs"


@dataclass
class PairsSummary:
    run_id: str
    rows: list[ManifestRow] = field(default_factory=list)
    pairs_written: int = 0
    index_rows: int = 0
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row.status == status)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("failed") else 0


def run_make_pairs(config: MakePairsConfig) -> PairsSummary:
    """Burn-in pairs from clean videos (or, with ``from_pairs``, index CLEAR's layout)."""
    started = time.monotonic()
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    options = config.storage.s3_storage_options()
    summary = PairsSummary(run_id=run_id)
    say = (lambda text: None) if config.quiet else (lambda text: print(text, flush=True))

    # 1. What is there, and what each clean video still needs.
    if config.from_pairs:
        from clear_ray.pairs.clear_layout import list_clear_layout

        videos, partners = list_clear_layout(config.src, config.extensions, options)
    else:
        videos = list_inputs(config.src, config.extensions, storage_options=options, exclude_prefix=config.dst)
        partners = {}
    config_fp = config_fingerprint(config, include=OUTPUT_SETTINGS)
    manifest = Manifest(config.dst, run_id, storage_options=options)
    latest = manifest.latest_rows()
    done_ids = list_done_pairs(config.dst, options)

    def record(row: ManifestRow) -> None:
        manifest.record(row)
        summary.rows.append(row)
        if row.status == "failed":
            print(f"[{len(summary.rows)}/{len(videos)}] FAILED {row.rel_path}: {row.error}", flush=True)
        elif row.status == "done":
            say(f"[{len(summary.rows)}/{len(videos)}] done {row.rel_path} ({row.frames} frames)")

    to_process: list[InputVideo] = []
    attempts: dict[str, int] = {}
    for video in videos:
        previous = latest.get(video.uri)
        decision = decide(video, previous, model_fingerprint=SYNTH_VERSION, config_fingerprint=config_fp,
                          output_exists=previous is not None and _all_shards_exist(video, previous, config, done_ids),
                          force=config.force, max_attempts=3)
        if decision.action == "process":
            to_process.append(video)
            attempts[video.uri] = decision.previous_attempts
        else:
            record(_row(run_id, video, config_fp, "skipped" if decision.action == "skip" else "quarantined",
                        frames=previous.frames, error=previous.error if decision.action != "skip" else None,
                        error_kind=previous.error_kind, attempts=decision.previous_attempts))

    # 2. Plan and burn on Ray; each video's manifest row as soon as its last window is done.
    if to_process:
        say(f"clear-ray make-pairs: {len(to_process)} of {len(videos)} clean videos to window")
        summary.pairs_written = _run_on_ray(config, to_process, partners, frozenset(done_ids), run_id,
                                            config_fp, attempts, record)

    # 3. Manifest compaction, then the index of every finished shard (this run's and earlier).
    manifest.compact()
    summary.index_rows = len(write_index(config.dst, options))
    if config.export_clear_layout:
        from clear_ray.pairs.clear_layout import export_clear_layout

        export_clear_layout(config)
    summary.seconds = time.monotonic() - started
    say(f"clear-ray make-pairs: {summary.pairs_written} pairs written, {summary.index_rows} in the index, "
        f"{summary.count('failed')} videos failed, {summary.count('skipped')} skipped ({summary.seconds:.1f} s)")
    return summary


def _all_shards_exist(video: InputVideo, previous: ManifestRow, config: MakePairsConfig,
                      done_ids: dict[str, str]) -> bool:
    if not previous.frames:
        return False
    windows = config.windows
    try:
        starts = window_starts(previous.frames, windows.frames, windows.per_video, windows.stride)
    except ValueError:
        return False
    return all(pair_id(video.rel_path, video.fingerprint, s, windows.frames, config.seed) in done_ids for s in starts)


def _row(run_id: str, video: InputVideo, config_fp: str, status: str, **fields: Any) -> ManifestRow:
    return ManifestRow(run_id=run_id, finished_at=time.time(), input_uri=video.uri, rel_path=video.rel_path,
                       input_fingerprint=video.fingerprint, model_fingerprint=SYNTH_VERSION,
                       config_fingerprint=config_fp, status=status, backend=BACKEND, **fields)


def connect(config: MakePairsConfig) -> None:
    import logging

    import ray

    if not ray.is_initialized():
        ray.init(address=config.ray.address, log_to_driver=not config.quiet,
                 logging_level=logging.WARNING if config.quiet else logging.INFO)


PLAN_CPUS = 0.25  # a planning task: one probe of one video


def pool_size(config: MakePairsConfig) -> tuple[int, float]:
    """(actors, CPUs each). One actor per ``num_cpus_per_actor`` of the cluster (capped by
    ``ray.max_actors``), each reserving a little less so the actors never hold every CPU:
    planning tasks must still run beside a full pool, or the pool would wait for input forever."""
    import ray

    cpus = float(ray.cluster_resources().get("CPU", 1))
    fits = max(1, int(cpus // config.ray.num_cpus_per_actor))
    actors = max(1, min(fits, config.ray.max_actors or fits))
    return actors, min(config.ray.num_cpus_per_actor, (cpus - PLAN_CPUS) / actors)


def _run_on_ray(config: MakePairsConfig, videos: list[InputVideo], partners: dict[str, str],
                done_ids: frozenset[str], run_id: str, config_fp: str, attempts: dict[str, int], record) -> int:
    """Plan every video's windows (parallel probes), then burn them on the actor pool; each
    video's manifest row is written as soon as its last window is done."""
    import ray.data

    from clear_ray.pairs.stages import BurnWindows, PlanWindows

    worker = BurnWindows
    if config.from_pairs:
        from clear_ray.pairs.clear_layout import PseudoLabelWindows as worker

    connect(config)
    actors, actor_cpus = pool_size(config)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = not config.quiet
    synthesis = config.synthesis
    by_uri = {v.uri: v for v in videos}

    def finish(uri: str, error: str | None = None, kind: str | None = None) -> None:
        video = by_uri[uri]
        if error is None:
            record(_row(run_id, video, config_fp, "done", frames=frames_of.get(uri)))
        else:
            record(_row(run_id, video, config_fp, "failed", error=error, error_kind=kind or "transient",
                        attempts=attempts.get(uri, 0) + 1, frames=frames_of.get(uri)))

    # 1. Plan: one probe task per video. Window rows are tiny, so they come back to the driver;
    #    this also keeps every burn block to one window (a video's windows spread over all
    #    actors) without a repartition task, whose whole CPU could starve a 1-CPU cluster.
    catalog = [{"uri": v.uri, "rel_path": v.rel_path, "fingerprint": v.fingerprint, "pair_uri": partners.get(v.uri, ""),
                "split": video_split(v.rel_path, synthesis.split, synthesis.dev_fraction)} for v in videos]
    planned = ray.data.from_items(catalog, override_num_blocks=len(catalog)) \
        .flat_map(PlanWindows(config, done_ids), num_cpus=PLAN_CPUS).take_all()
    frames_of = {row["uri"]: int(row["video_frames"]) for row in planned if int(row["video_frames"]) > 0}
    windows = [row for row in planned if row["kind"] == "window"]
    remaining: dict[str, int] = defaultdict(int)
    for row in windows:
        remaining[row["uri"]] += 1
    for row in planned:
        if row["kind"] == "failed":
            finish(row["uri"], row["error"], row["error_kind"])
        elif row["kind"] == "planned":
            finish(row["uri"])
    if not windows:
        return 0

    # 2. Burn: the actor pool writes one shard per window.
    dataset = ray.data.from_items(windows, override_num_blocks=len(windows)).map_batches(
        worker, fn_constructor_kwargs={"config": config}, batch_size=1, batch_format="pandas",
        num_cpus=actor_cpus, compute=ray.data.ActorPoolStrategy(min_size=actors, max_size=actors))
    errors: dict[str, tuple[str, str]] = {}
    written = 0
    for row in dataset.iter_rows():
        uri = row["uri"]
        if row["kind"] == "pair":
            written += 1
        elif row["kind"] == "failed":
            errors.setdefault(uri, (row["error"], row["error_kind"]))
        remaining[uri] -= 1
        if remaining[uri] == 0:
            finish(uri, *errors.get(uri, (None, None)))
    for uri, left in remaining.items():
        if left > 0:  # never silent
            finish(uri, "pipeline ended before every window was written", "transient")
    return written
