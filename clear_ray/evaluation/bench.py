"""`clear-ray bench run DIR --backend X`: score a backend on a benchmark set.

Three rows per language and overall, on the same clips:

- ``input``: the subtitled video itself (do nothing): the floor any remover must beat.
- ``oracle-telea``: ``cv2.inpaint`` (Telea) per frame given the TRUE mask, dilated by
  ``ORACLE_DILATION_PX`` to cover the chroma/codec smear around glyphs. No real user has
  that mask; it shows what a simple inpainter reaches with perfect detection.
- the backend, run through the real pipeline (``clear_ray.pipeline.run_remove_job``) on
  the split's subtitled videos; when the pipeline is not importable the row says why.

The first two do not depend on the backend: they come from the set's cache
(``reference_cache``) when its key matches, so a second run with another remover only
scores that remover. Clips are scored one Ray task each (``parallel``, ``clip_scoring``).

The pipeline keeps no masks, so the backend's mask scores (MaskP/MaskR/MaskFPR) come from
running the same remover once more in the scoring worker, with the job's chunk plan, on
the clip's frames as the metrics decode them (``chunked_removal``); on text-free clips
MaskFPR is the share of the frame it marks. Backends that want a GPU are not run twice
(their mask columns read "n/a").

Every metric is defined in ``metrics.py``; LPIPS, DISTS and VFID (``perceptual``,
``dists``, ``vfid``) only from local weight files the user gives. Columns not measured
read "n/a", never a made-up value.
"""

from __future__ import annotations

import csv
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from clear_ray.evaluation import reference_cache
from clear_ray.evaluation.benchset import LANGUAGE_ORDER, load_manifest, write_json_atomic
from clear_ray.evaluation.clip_scoring import (INPUT_ROW, MASK_TOLERANCE_PX, ORACLE_DILATION_PX, ORACLE_ROW,
                                               BackendOutput, ClipTask, MaskSpec)
from clear_ray.evaluation.parallel import ensure_ray, score_clips
from clear_ray.evaluation.perceptual import PerceptualConfig, Scorers

__all__ = ["INPUT_ROW", "ORACLE_ROW", "ORACLE_DILATION_PX", "MASK_TOLERANCE_PX", "run_bench", "BenchReport"]
# (key, header, format); the table shows them in this order.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("psnr_full", "PSNR", "{:.2f}"), ("psnr_text", "PSNRtxt", "{:.2f}"), ("psnr_rest", "PSNRrest", "{:.2f}"),
    ("ssim_full", "SSIM", "{:.4f}"), ("ssim_text", "SSIMtxt", "{:.4f}"), ("ssim_rest", "SSIMrest", "{:.4f}"),
    ("twe", "TWE", "{:.3f}"), ("tc", "TC", "{:.3f}"), ("flow_mean", "FlowMean", "{:.3f}"),
    ("flow_var", "FlowVar", "{:.3f}"), ("seconds_per_frame", "s/frame", "{:.4f}"),
    ("mask_precision", "MaskP", "{:.3f}"), ("mask_recall", "MaskR", "{:.3f}"), ("mask_fpr", "MaskFPR", "{:.4f}"),
    ("lpips", "LPIPS", "{:.3f}"), ("dists", "DISTS", "{:.3f}"), ("vfid", "VFID", "{:.4g}"),
)


class PipelineUnavailable(RuntimeError):
    pass


@dataclass
class BenchReport:
    split: str
    backend: str
    clips: list[dict[str, Any]] = field(default_factory=list)  # one per (method, clip)
    rows: list[dict[str, Any]] = field(default_factory=list)  # aggregated (method, language)
    notes: list[str] = field(default_factory=list)
    reference_computed: int = 0  # clips whose input/oracle rows were computed in this run
    reference_cached: int = 0  # ... and read from the set's cache
    seconds: dict[str, float] = field(default_factory=dict)  # "backend", "scoring"

    def table(self) -> str:
        return format_table(self.rows)

    def comparison(self) -> str:
        from clear_ray.evaluation.comparison import comparison_table

        return comparison_table(self.clips, self.backend)

    @property
    def backend_scored(self) -> bool:
        return any(row["method"] == self.backend and row["status"] == "done" for row in self.clips)


def run_bench(bench_dir: str | Path, backend: str, split: str = "test", work_dir: str | Path | None = None,
              log: Callable[[str], None] = print, perceptual: PerceptualConfig | None = None,
              job_config: str | Path | None = None, serial: bool = False, use_cache: bool = True,
              address: str | None = None) -> BenchReport:
    """Score ``backend`` on ``split``. ``job_config`` is an optional `clear-ray remove` YAML
    (model paths for CLEAR, Ray address, ...); its src/dst/backend are overridden. Clips are
    scored one Ray task each on the job's cluster (``serial``: in this process); the
    reference rows come from the set's cache when their key matches."""
    import ray

    bench_dir = Path(bench_dir)
    perceptual = perceptual or PerceptualConfig()
    manifest = load_manifest(bench_dir)
    clips = [clip for clip in manifest["clips"] if clip["split"] == split]
    if not clips:
        raise ValueError(f"{bench_dir} has no clips in split {split!r} (it has {sorted(manifest['splits'])})")
    report = BenchReport(split=split, backend=backend, notes=perceptual.notes())
    Scorers(perceptual)  # unusable weight files fail here, before the job runs
    ray_was_up = ray.is_initialized()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-", dir=work_dir) as scratch:
            config, outputs, mask = _run_backend_step(bench_dir, split, backend, Path(scratch), job_config,
                                                      address, report, log)
            started = time.perf_counter()
            score_step(bench_dir, clips, backend, outputs, mask, perceptual, config, serial, use_cache, address,
                        report, log)
            report.seconds["scoring"] = time.perf_counter() - started
    finally:
        if not ray_was_up and ray.is_initialized():
            ray.shutdown()
    return report


def _run_backend_step(bench_dir: Path, split: str, backend: str, scratch: Path, job_config, address: str | None,
                      report: BenchReport, log: Callable[[str], None]):
    """The pipeline over the split: (job config or None, clip id -> BackendOutput, MaskSpec or None)."""
    started = time.perf_counter()
    config, outputs, mask = None, {}, None
    try:
        config = _job_config(bench_dir, split, backend, scratch, job_config, address)
        outputs = run_backend(config, log)
    except PipelineUnavailable as error:
        report.notes.append(f"{backend}: {error}")
        log(f"  {backend}: {error}")
    except Exception as error:  # the reference rows are still worth having
        message = f"{backend}: the pipeline failed: {type(error).__name__}: {error}"
        report.notes.append(message)
        log(f"  {message}")
    else:
        mask = mask_spec_for_backend(config, report.notes)
    report.seconds["backend"] = time.perf_counter() - started
    return config, outputs, mask


def score_step(bench_dir: Path, clips: list[dict[str, Any]], backend: str, outputs: dict[str, BackendOutput],
                mask: MaskSpec | None, perceptual: PerceptualConfig, config, serial: bool, use_cache: bool,
                address: str | None, report: BenchReport, log: Callable[[str], None]) -> None:
    """Score ``outputs`` (clip id -> BackendOutput) and the reference rows of ``clips`` into
    ``report`` (clips, rows, cache counts); writes the fresh reference rows to the cache."""
    entries = reference_cache.load(bench_dir) if use_cache else {}
    code_version = reference_cache.metric_code_version()
    perceptual_fp = perceptual.fingerprint()
    keys = {clip["id"]: reference_cache.entry_key(bench_dir, clip, code_version, perceptual_fp) for clip in clips}
    tasks = [ClipTask(bench_dir=str(bench_dir), clip=clip, backend=backend, output=outputs.get(clip["id"]),
                      perceptual=perceptual, mask=mask,
                      cached=reference_cache.lookup(entries, clip["id"], keys[clip["id"]]) if use_cache else None)
             for clip in clips]
    if not serial:
        ensure_ray(config.ray.address if config is not None else address)
    cached = sum(task.cached is not None for task in tasks)
    log(f"  scoring {len(tasks)} clips ({'serially' if serial else 'one Ray task each'}; "
        f"reference rows: {cached} cached, {len(tasks) - cached} to compute)")

    def progress(task: ClipTask, result: dict[str, Any]) -> None:
        rows = [*result["reference"]["rows"], result["backend_row"]]
        log(f"  {task.clip['id']}: " + ", ".join(f"{r['method']} PSNRtxt {r.get('psnr_text', math.nan):.2f}"
                                                 for r in rows))

    results = score_clips(tasks, serial=serial, on_result=progress)
    fresh = {}
    features: dict[str, dict[str, list[float]]] = {}
    for task, result in zip(tasks, results):
        clip_id = task.clip["id"]
        reference = result["reference"]
        report.clips += [*reference["rows"], result["backend_row"]]
        for method, vector in {**reference.get("vfid", {}), backend: result["backend_vfid"]}.items():
            if vector is not None:
                features.setdefault(method, {})[clip_id] = vector
        if result["reference_computed"]:
            report.reference_computed += 1
            fresh[clip_id] = {"key": keys[clip_id], **reference}
        else:
            report.reference_cached += 1
    if use_cache and fresh:
        reference_cache.store(bench_dir, fresh)
    report.rows = aggregate(report.clips, [INPUT_ROW, ORACLE_ROW, backend], features)


def _job_config(bench_dir: Path, split: str, backend: str, out_dir: Path, job_config: str | Path | None,
                address: str | None = None):
    """The `clear-ray remove` job over the split's subtitled videos (YAML settings kept)."""
    from clear_ray.config import RemoveJobConfig, load_config

    overrides = {"src": str(bench_dir / split / "subtitled"), "dst": str(out_dir / "out"),
                 "remover.backend": backend, "force": True, "quiet": True}
    if address is not None:
        overrides["ray.address"] = address
    return load_config(RemoveJobConfig, yaml_path=job_config, overrides=overrides)


def mask_spec_for_backend(config, notes: list[str]) -> MaskSpec | None:
    """How the scoring workers recover the remover's mask; None for GPU backends (they are
    not run twice)."""
    from clear_ray.removers import backend_wants_gpu

    if backend_wants_gpu(config.remover):
        notes.append(f"{config.remover.backend}: mask scores not computed "
                     "(the remover wants a GPU; it is not run twice)")
        return None
    chunking = config.chunking
    return MaskSpec(config.remover, chunking.chunk_size, chunking.overlap, chunking.blend)


def run_backend(config, log: Callable[[str], None]) -> dict[str, BackendOutput]:
    """Run the real removal pipeline (the job ``_job_config`` made)."""
    try:
        from clear_ray.pipeline import run_remove_job
    except ImportError as error:
        raise PipelineUnavailable(f"the removal pipeline is not available in this version ({error})") from None
    log(f"  running the pipeline with backend {config.remover.backend} on {config.src}")
    try:
        summary = run_remove_job(config)
    except NotImplementedError as error:
        raise PipelineUnavailable(str(error)) from None
    outputs = {}
    for row in summary.rows:
        clip_id = Path(row.input_uri).stem
        path = row.output_uri if row.output_uri and row.status == "done" else None
        seconds = row.seconds_total if row.seconds_total is not None else math.nan
        outputs[clip_id] = BackendOutput(path, float(seconds), row.status if path is not None
                                         else f"{row.status}: {row.error or 'no output'}")
    return outputs


def aggregate(clip_rows: list[dict[str, Any]], methods: list[str],
              vfid_features: dict[str, dict[str, list[float]]] | None = None) -> list[dict[str, Any]]:
    """Mean of each metric over clips (NaN ignored) per (method, language), and "all":
    every clip WITH text. Text-free clips keep their own row ("none"): leaving them
    untouched scores the 100 dB PSNR cap, which would swamp any mean it entered.
    VFID is a statistic of a set, not a mean: the Fréchet distance between the group's
    clean clips and the method's outputs, given features of at least 2 clips of both."""
    vfid_features = vfid_features or {}
    languages = sorted({row["language"] for row in clip_rows},
                       key=lambda code: (LANGUAGE_ORDER + ("none",)).index(code)
                       if code in LANGUAGE_ORDER + ("none",) else 99)
    rows = []
    for method in dict.fromkeys(methods):
        mine = [row for row in clip_rows if row["method"] == method]
        for language in [*languages, "all"]:
            group = [row for row in mine
                     if row["language"] == language or (language == "all" and row["language"] != "none")]
            if not group:
                continue
            out = {"method": method, "language": language, "clips": len(group),
                   "scored": sum(row["status"] == "done" for row in group)}
            for key, _, _ in COLUMNS:
                values = [row[key] for row in group if isinstance(row.get(key), float) and not math.isnan(row[key])]
                out[key] = float(np.mean(values)) if values else None
            out["vfid"] = _group_vfid(vfid_features, method, [row["clip"] for row in group])
            rows.append(out)
    return rows


def _group_vfid(features: dict[str, dict[str, list[float]]], method: str, clip_ids: list[str]) -> float | None:
    from clear_ray.evaluation.vfid import vfid

    clean, mine = features.get("clean", {}), features.get(method, {})
    both = [clip_id for clip_id in clip_ids if clip_id in clean and clip_id in mine]
    if len(both) < 2:
        return None
    return vfid(np.array([clean[c] for c in both]), np.array([mine[c] for c in both]))


def format_table(rows: list[dict[str, Any]]) -> str:
    headers = ["method", "lang", "clips"] + [header for _, header, _ in COLUMNS]
    body = [[row["method"], row["language"], f"{row['scored']}/{row['clips']}"]
            + [fmt.format(row[key]) if row.get(key) is not None else "n/a" for key, _, fmt in COLUMNS]
            for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *body)]
    lines = ["  ".join(cell.ljust(width) if i < 2 else cell.rjust(width)
                       for i, (cell, width) in enumerate(zip(line, widths))) for line in [headers, *body]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("all = mean over clips with text; none = text-free clips (a remover must leave them "
                 "untouched); TWE in 1e-3; n/a = not measured")
    return "\n".join(lines)


def write_report(report: BenchReport, json_path: Path) -> tuple[Path, Path]:
    """JSON (aggregated rows + per-clip rows + notes) and CSV (aggregated rows)."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    from clear_ray.evaluation.comparison import compare

    write_json_atomic(json_path, {"split": report.split, "backend": report.backend, "notes": report.notes,
                                  "columns": {key: header for key, header, _ in COLUMNS},
                                  "rows": report.rows, "clips": _json_safe(report.clips),
                                  "comparison": _json_safe_tree(compare(report.clips, report.backend)),
                                  "reference_rows": {"computed": report.reference_computed,
                                                     "cached": report.reference_cached},
                                  "seconds": report.seconds})
    csv_path = json_path.with_suffix(".csv")
    temporary = csv_path.with_name(f".{csv_path.name}.partial")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["method", "language", "clips", "scored"]
                                + [key for key, _, _ in COLUMNS])
        writer.writeheader()
        for row in report.rows:
            writer.writerow({k: ("n/a" if v is None else v) for k, v in row.items()})
    temporary.replace(csv_path)
    return json_path, csv_path


def _json_safe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in rows]


def _json_safe_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe_tree(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def bench_json_default(bench_dir: Path, split: str, backend: str) -> Path:
    return bench_dir / "results" / f"{split}-{backend}.json"

