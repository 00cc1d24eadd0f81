"""`clear-ray bench run DIR --backend X`: score a backend on a benchmark set.

Three rows per language and overall, all computed in one run on the same clips:

- ``input``: the subtitled video itself (do nothing): the floor any remover must beat.
- ``oracle-telea``: ``cv2.inpaint`` (Telea) per frame given the TRUE mask, dilated by
  ``ORACLE_DILATION_PX`` to cover the chroma/codec smear around glyphs. No real user has
  that mask; it shows what a simple inpainter reaches with perfect detection.
- the backend, run through the real pipeline (``clear_ray.pipeline.run_remove_job``) on
  the split's subtitled videos; when the pipeline is not importable the row says why.

The pipeline keeps no masks, so the backend's mask scores (MaskP/MaskR/MaskFPR) come from
running the same remover once more in this process, with the job's chunk plan, on the
clip's frames as the metrics decode them (``chunked_removal``); on text-free clips MaskFPR is the share of the frame it marks.
Backends that want a GPU are not run twice (their mask columns read "n/a").

Every metric is defined in ``metrics.py``. LPIPS is computed only when the user gives the
AlexNet backbone weights as a local file (``perceptual.py``); DISTS and VFID are not
computed in this version. Columns not measured read "n/a", never a made-up value.
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

from clear_ray.evaluation import metrics
from clear_ray.synth.video_io import read_video
from clear_ray.evaluation.benchset import LANGUAGE_ORDER, load_manifest, write_json_atomic
from clear_ray.synth.burnin import load_alpha

INPUT_ROW = "input"
ORACLE_ROW = "oracle-telea"
ORACLE_DILATION_PX = 2
MASK_TOLERANCE_PX = 2
# (key, header, format); the table shows them in this order.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("psnr_full", "PSNR", "{:.2f}"), ("psnr_text", "PSNRtxt", "{:.2f}"), ("psnr_rest", "PSNRrest", "{:.2f}"),
    ("ssim_full", "SSIM", "{:.4f}"), ("ssim_text", "SSIMtxt", "{:.4f}"), ("ssim_rest", "SSIMrest", "{:.4f}"),
    ("twe", "TWE", "{:.3f}"), ("tc", "TC", "{:.3f}"), ("flow_mean", "FlowMean", "{:.3f}"),
    ("flow_var", "FlowVar", "{:.3f}"), ("seconds_per_frame", "s/frame", "{:.4f}"),
    ("mask_precision", "MaskP", "{:.3f}"), ("mask_recall", "MaskR", "{:.3f}"), ("mask_fpr", "MaskFPR", "{:.4f}"),
    ("lpips", "LPIPS", "{:.3f}"), ("dists", "DISTS", "{:.3f}"), ("vfid", "VFID", "{:.2f}"),
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

    def table(self) -> str:
        return format_table(self.rows)

    @property
    def backend_scored(self) -> bool:
        return any(row["method"] == self.backend and row["status"] == "done" for row in self.clips)


def run_bench(bench_dir: str | Path, backend: str, split: str = "test", work_dir: str | Path | None = None,
              log: Callable[[str], None] = print, lpips_weights: str | Path | None = None,
              job_config: str | Path | None = None) -> BenchReport:
    """Score ``backend`` on ``split``. ``job_config`` is an optional `clear-ray remove` YAML
    (model paths for CLEAR, Ray address, ...); its src/dst/backend are overridden."""
    bench_dir = Path(bench_dir)
    lpips_scorer = None
    if lpips_weights is not None:
        from clear_ray.evaluation.perceptual import LpipsScorer

        lpips_scorer = LpipsScorer(lpips_weights)
    manifest = load_manifest(bench_dir)
    clips = [clip for clip in manifest["clips"] if clip["split"] == split]
    if not clips:
        raise ValueError(f"{bench_dir} has no clips in split {split!r} (it has {sorted(manifest['splits'])})")
    report = BenchReport(split=split, backend=backend)

    backend_outputs: dict[str, tuple[Path | None, float, str]] = {}
    mask_source = None
    with tempfile.TemporaryDirectory(prefix="bench-", dir=work_dir) as scratch:
        try:
            config = _job_config(bench_dir, split, backend, Path(scratch), job_config)
            backend_outputs = run_backend(config, log)
        except PipelineUnavailable as error:
            report.notes.append(f"{backend}: {error}")
            log(f"  {backend}: {error}")
        except Exception as error:  # the reference rows are still worth having
            message = f"{backend}: the pipeline failed: {type(error).__name__}: {error}"
            report.notes.append(message)
            log(f"  {message}")
        else:
            mask_source = MaskSource.for_backend(config, report.notes)
        for clip in clips:
            report.clips += _score_clip(bench_dir, clip, backend, backend_outputs.get(clip["id"]), log,
                                        lpips_scorer, mask_source)
    report.rows = aggregate(report.clips, [INPUT_ROW, ORACLE_ROW, backend])
    return report


def _job_config(bench_dir: Path, split: str, backend: str, out_dir: Path, job_config: str | Path | None):
    """The `clear-ray remove` job over the split's subtitled videos (YAML settings kept)."""
    from clear_ray.config import RemoveJobConfig, load_config

    return load_config(RemoveJobConfig, yaml_path=job_config, overrides={
        "src": str(bench_dir / split / "subtitled"), "dst": str(out_dir / "out"), "remover.backend": backend,
        "force": True, "quiet": True})


@dataclass
class MaskSource:
    """The backend's remover, loaded in this process, to recover the masks it draws."""
    remover: Any
    chunk_size: int
    overlap: int
    blend: str

    @classmethod
    def for_backend(cls, config, notes: list[str]) -> "MaskSource | None":
        from clear_ray.removers import backend_wants_gpu, load_remover

        if backend_wants_gpu(config.remover):
            notes.append(f"{config.remover.backend}: mask scores not computed "
                         "(the remover wants a GPU; it is not run twice)")
            return None
        chunking = config.chunking
        return cls(load_remover(config.remover), chunking.chunk_size, chunking.overlap, chunking.blend)

    def mask(self, frames_thwc_u8: np.ndarray) -> np.ndarray:
        from clear_ray.evaluation.chunked_removal import run_chunked

        _, mask_thw, _ = run_chunked(self.remover, frames_thwc_u8, self.chunk_size, self.overlap, self.blend)
        return mask_thw


def run_backend(config, log: Callable[[str], None]) -> dict[str, tuple[Path | None, float, str]]:
    """Run the real removal pipeline (the job ``_job_config`` made).
    Returns clip id -> (output path or None, seconds, status)."""
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
        path = Path(row.output_uri) if row.output_uri and row.status == "done" else None
        seconds = row.seconds_total if row.seconds_total is not None else math.nan
        outputs[clip_id] = (path, float(seconds), row.status if path is not None
                            else f"{row.status}: {row.error or 'no output'}")
    return outputs


def _score_clip(bench_dir: Path, clip: dict[str, Any], backend: str,
                backend_output: tuple[Path | None, float, str] | None,
                log: Callable[[str], None], lpips_scorer=None,
                mask_source: MaskSource | None = None) -> list[dict[str, Any]]:
    import cv2

    clean, _ = read_video(bench_dir / clip["paths"]["clean"])
    subtitled, _ = read_video(bench_dir / clip["paths"]["subtitled"])
    _, mask_thw = load_alpha(bench_dir / clip["paths"]["alpha"])
    if not clean.shape == subtitled.shape or clean.shape[:3] != mask_thw.shape:
        raise ValueError(f"{clip['id']}: clean {clean.shape}, subtitled {subtitled.shape} and "
                         f"mask {mask_thw.shape} disagree")
    reference_pairs = metrics.flow_pairs(clean)
    frames = len(clean)
    results = []

    def score(method: str, output: np.ndarray | None, seconds: float, predicted_mask: np.ndarray | None,
              status: str = "done") -> None:
        row = {"method": method, "clip": clip["id"], "language": clip["language"] or "none",
               "frames": frames, "status": status}
        if output is not None and output.shape != clean.shape:
            row["status"] = f"output shape {output.shape} != {clean.shape}"
            output = None
        if output is not None:
            row.update(metrics.region_scores(output, clean, mask_thw))
            row.update(metrics.temporal_scores(output, clean, reference_pairs))
            row["seconds_per_frame"] = metrics.seconds_per_frame(seconds, frames)
            if lpips_scorer is not None:
                row["lpips"] = lpips_scorer.score(output, clean)
            if predicted_mask is not None:
                pr = metrics.mask_precision_recall(predicted_mask, mask_thw, tolerance_px=MASK_TOLERANCE_PX)
                row.update(mask_precision=pr["precision"], mask_recall=pr["recall"],
                           mask_fpr=pr["false_positive_rate"])
        results.append(row)

    score(INPUT_ROW, subtitled, 0.0, None)

    started = time.perf_counter()
    oracle_mask = metrics.dilate(mask_thw, ORACLE_DILATION_PX)
    oracle = subtitled.copy()
    for index in np.flatnonzero(oracle_mask.reshape(frames, -1).any(axis=1)):
        oracle[index] = cv2.inpaint(subtitled[index], oracle_mask[index].astype(np.uint8), 3, cv2.INPAINT_TELEA)
    score(ORACLE_ROW, oracle, time.perf_counter() - started, oracle_mask)

    if backend_output is None:
        score(backend, None, math.nan, None, status="not run")
    elif backend_output[0] is None:
        score(backend, None, backend_output[1], None, status=backend_output[2])
    else:
        output, _ = read_video(backend_output[0])
        predicted_mask = mask_source.mask(subtitled) if mask_source is not None else None
        score(backend, output, backend_output[1], predicted_mask, status=backend_output[2])
    log(f"  {clip['id']}: " + ", ".join(f"{r['method']} PSNRtxt {r.get('psnr_text', math.nan):.2f}"
                                        for r in results))
    return results


def aggregate(clip_rows: list[dict[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    """Mean of each metric over clips (NaN ignored) per (method, language), and "all":
    every clip WITH text. Text-free clips keep their own row ("none"): leaving them
    untouched scores the 100 dB PSNR cap, which would swamp any mean it entered."""
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
            rows.append(out)
    return rows


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
    write_json_atomic(json_path, {"split": report.split, "backend": report.backend, "notes": report.notes,
                                  "columns": {key: header for key, header, _ in COLUMNS},
                                  "rows": report.rows, "clips": _json_safe(report.clips)})
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


def bench_json_default(bench_dir: Path, split: str, backend: str) -> Path:
    return bench_dir / "results" / f"{split}-{backend}.json"

