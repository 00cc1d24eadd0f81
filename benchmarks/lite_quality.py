"""lite vs identity through the real `clear-ray remove` job (speed), and lite's quality table.

    clear-ray bench make /tmp/bench --split dev
    python benchmarks/lite_quality.py /tmp/bench --split dev

Speed: the same inputs (the split's subtitled videos, or ``--clips``) go through the real
job (``clear_ray.pipeline.run_remove_job``: plan, remover actors, stitch, H.264 encode,
audio mux) with ``--backend identity`` and ``--backend lite``, interleaved in one run
(identity, lite, identity, lite, ...) on one Ray cluster started once, so both see the
same machine load. Each job's frames per second is its frames over its wall time; the
printed ratio is lite fps / identity fps per round and the median over rounds (the
issue's goal: >= 0.5).

Quality: lite's outputs from the last round are scored exactly as `clear-ray bench run`
scores them (one Ray task per clip; the input and true-mask Telea rows from the set's
cache when present): the per-language table of lite vs the true-mask row, and the full
table. ``--no-quality`` skips it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def job_config(src: Path, dst: Path, backend: str, lite_overrides: dict[str, str], address: str | None,
               job_overrides: dict[str, str] | None = None):
    from clear_ray.config import RemoveJobConfig, load_config

    overrides = {"src": str(src), "dst": str(dst), "remover.backend": backend, "force": True, "quiet": True,
                 "ray.address": address, **(job_overrides or {})}
    overrides.update({f"remover.lite.{key}": value for key, value in lite_overrides.items()})
    return load_config(RemoveJobConfig, overrides=overrides)


def timed_job(config) -> tuple[float, int, dict]:
    """(wall seconds, frames, clip id -> BackendOutput) of one real job."""
    from clear_ray.evaluation.clip_scoring import BackendOutput
    from clear_ray.pipeline import run_remove_job

    started = time.perf_counter()
    summary = run_remove_job(config)
    seconds = time.perf_counter() - started
    failed = [row for row in summary.rows if row.status != "done"]
    if failed:
        raise RuntimeError(f"{config.remover.backend}: {failed[0].rel_path} {failed[0].status}: {failed[0].error}")
    outputs = {Path(row.input_uri).stem: BackendOutput(
        row.output_uri, float("nan") if row.seconds_total is None else float(row.seconds_total), "done")
        for row in summary.rows}
    return seconds, sum(row.frames or 0 for row in summary.rows), outputs


def main(argv: list[str] | None = None) -> int:
    from clear_ray.evaluation.benchset import load_manifest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("--split", default="dev", choices=("dev", "test"))
    parser.add_argument("--clips", default=None, help="comma-separated clip ids (default: all of the split)")
    parser.add_argument("--rounds", type=int, default=2, help="identity+lite job pairs (default 2)")
    parser.add_argument("--no-quality", action="store_true", help="speed only")
    parser.add_argument("--address", default=None, help="Ray cluster (default: a local one)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="lite setting override")
    parser.add_argument("--job-set", action="append", default=[], metavar="FIELD=VALUE",
                        help="job setting override for both backends (e.g. ray.num_cpus_per_actor=0.5)")
    args = parser.parse_args(argv)

    clips = [c for c in load_manifest(args.bench_dir)["clips"] if c["split"] == args.split]
    if args.clips:
        wanted = set(args.clips.split(","))
        clips = [c for c in clips if c["id"] in wanted]
    if not clips:
        print(f"no {args.split} clips in {args.bench_dir}", file=sys.stderr)
        return 2
    lite_overrides = dict(item.split("=", 1) for item in args.set)
    job_overrides = dict(item.split("=", 1) for item in args.job_set)

    with tempfile.TemporaryDirectory(prefix="lite-quality-") as work:
        work_dir = Path(work)
        src = work_dir / "src"  # exactly the chosen inputs, as links
        src.mkdir()
        for clip in clips:
            (src / Path(clip["paths"]["subtitled"]).name).symlink_to((args.bench_dir / clip["paths"]["subtitled"]).resolve())

        import ray

        from clear_ray.pipeline.graph import connect

        connect(job_config(src, work_dir / "dst", "identity", {}, args.address))
        print(f"{len(clips)} {args.split} clips of {args.bench_dir}; {args.rounds} rounds of identity, lite "
              f"(cluster: {ray.cluster_resources().get('CPU', 0):.0f} CPUs)", flush=True)
        ratios, lite_outputs = [], {}
        for round_index in range(args.rounds):
            fps = {}
            for backend in ("identity", "lite"):
                config = job_config(src, work_dir / f"{backend}-{round_index}", backend, lite_overrides, args.address,
                                    job_overrides)
                seconds, frames, outputs = timed_job(config)
                fps[backend] = frames / seconds
                if backend == "lite":
                    lite_outputs = outputs
                print(f"  round {round_index + 1} {backend:8}: {frames} frames in {seconds:6.1f} s = "
                      f"{fps[backend]:6.2f} fps", flush=True)
            ratios.append(fps["lite"] / fps["identity"])
            print(f"  round {round_index + 1}: lite fps / identity fps = {ratios[-1]:.3f}", flush=True)
        print(f"speed: lite fps / identity fps = {statistics.median(ratios):.3f} (median of {len(ratios)}: "
              + ", ".join(f"{r:.3f}" for r in ratios) + "; goal >= 0.5)")

        if not args.no_quality:
            quality(args.bench_dir, clips, lite_outputs, job_config(src, work_dir / "q", "lite", lite_overrides,
                                                                     args.address))
    return 0


def quality(bench_dir: Path, clips: list[dict], outputs: dict, config) -> None:
    from clear_ray.evaluation.bench import BenchReport, mask_spec_for_backend, score_step
    from clear_ray.evaluation.perceptual import PerceptualConfig

    report = BenchReport(split=clips[0]["split"], backend="lite")
    started = time.perf_counter()
    score_step(bench_dir, clips, "lite", outputs, mask_spec_for_backend(config, report.notes), PerceptualConfig(),
               config, serial=False, use_cache=True, address=config.ray.address, report=report, log=lambda line: None)
    print(f"\nquality ({report.reference_computed} reference rows computed, {report.reference_cached} cached; "
          f"scored in {time.perf_counter() - started:.1f} s):\n")
    print(report.comparison())
    print()
    print(report.table())


if __name__ == "__main__":
    raise SystemExit(main())
