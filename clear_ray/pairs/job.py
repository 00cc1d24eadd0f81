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
    for video in videos:
        previous = latest.get(video.uri)
        decision = decide(video, previous, model_fingerprint=SYNTH_VERSION, config_fingerprint=config_fp,
                          output_exists=previous is not None and _all_shards_exist(video, previous, config, done_ids),
                          force=config.force, max_attempts=3)
        if decision.action == "process":
            to_process.append(video)
        else:
            record(_row(run_id, video, config_fp, "skipped" if decision.action == "skip" else "quarantined",
                        frames=previous.frames, error=previous.error if decision.action != "skip" else None,
                        error_kind=previous.error_kind, attempts=decision.previous_attempts))

    # 2. Plan and burn on Ray; close each video as its rows arrive.
    if to_process:
        say(f"clear-ray make-pairs: {len(to_process)} of {len(videos)} clean videos to window")
        summary.pairs_written = _run_on_ray(config, to_process, partners, frozenset(done_ids), run_id,
                                            config_fp, record)

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


def pool_size(config: MakePairsConfig) -> tuple[int, float]:
    """(actors, CPUs each): as many 1-CPU actors as the cluster fits, capped by ray.max_actors."""
    import ray

    cpus = float(ray.cluster_resources().get("CPU", 1))
    actor_cpus = min(config.ray.num_cpus_per_actor, cpus)
    fits = max(1, int(cpus // actor_cpus))
    return max(1, min(fits, config.ray.max_actors or fits)), actor_cpus


def _run_on_ray(config: MakePairsConfig, videos: list[InputVideo], partners: dict[str, str],
                done_ids: frozenset[str], run_id: str, config_fp: str, record) -> int:
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
    catalog = [{"uri": v.uri, "rel_path": v.rel_path, "fingerprint": v.fingerprint, "pair_uri": partners.get(v.uri, ""),
                "split": video_split(v.rel_path, synthesis.split, synthesis.dev_fraction)} for v in videos]
    dataset = ray.data.from_items(catalog, override_num_blocks=len(catalog))
    # Planning is a light probe: a fraction of a CPU, so it runs beside a full actor pool.
    dataset = dataset.flat_map(PlanWindows(config, done_ids), num_cpus=0.25)
    # One window per block: a video's windows spread over every actor instead of queueing on one.
    dataset = dataset.repartition(target_num_rows_per_block=1)
    dataset = dataset.map_batches(worker, fn_constructor_kwargs={"config": config}, batch_size=1,
                                  batch_format="pandas", num_cpus=actor_cpus,
                                  compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors))

    by_uri = {v.uri: v for v in videos}
    planned: dict[str, int] = defaultdict(int)  # windows still to burn, per video
    errors: dict[str, tuple[str, str]] = {}
    frames_of: dict[str, int] = {}
    seen: set[str] = set()
    written = 0
    for row in dataset.iter_rows():
        uri = row["uri"]
        seen.add(uri)
        if row["kind"] == "pair":
            written += 1
        elif row["kind"] == "failed":
            errors.setdefault(uri, (row["error"], row["error_kind"]))
        if int(row["video_frames"]) > 0:
            frames_of[uri] = int(row["video_frames"])
    for uri, video in by_uri.items():
        if uri in errors:
            error, kind = errors[uri]
            record(_row(run_id, video, config_fp, "failed", error=error, error_kind=kind or "transient", attempts=1))
        elif uri in seen:
            record(_row(run_id, video, config_fp, "done", frames=frames_of.get(uri)))
        else:
            record(_row(run_id, video, config_fp, "failed", error="pipeline ended before the video was windowed",
                        error_kind="transient", attempts=1))
    return written

