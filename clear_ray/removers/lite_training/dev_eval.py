"""A fast lite-only score on a benchmark split (dev while tuning): what changes when the
detector or the fill changes, in seconds per clip rather than `bench run`'s minutes.

    python -m clear_ray.removers.lite_training.dev_eval BENCH_DIR --split dev [--set FIELD=VALUE ...]

Per clip: PSNR inside the text and full frame (``clear_ray.evaluation.metrics.psnr`` over
the same dilated true mask `bench run` uses) for the input, the true-mask Telea row and
lite (run chunk by chunk as the pipeline runs it), plus lite's mask precision / recall /
IoU against the true mask (2-px tolerance, as `bench run`) and, on text-free clips, the
share of pixels lite marks. No SSIM or temporal metrics: `clear-ray bench run` is the
reference; this is the inner loop. Input and oracle rows are cached per clip in
``--cache`` (they do not depend on lite).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np


def _psnrs(output: np.ndarray, clean: np.ndarray, text_thw: np.ndarray) -> dict[str, float]:
    from clear_ray.evaluation import metrics

    full, text = [], []
    for out, ref, region in zip(output, clean, text_thw):
        full.append(metrics.psnr(out, ref))
        if region.any():
            text.append(metrics.psnr(out, ref, region))
    return {"psnr_full": float(np.mean(full)), "psnr_text": float(np.mean(text)) if text else math.nan}


def _oracle(subtitled: np.ndarray, mask_thw: np.ndarray) -> np.ndarray:
    import cv2

    from clear_ray.evaluation import metrics
    from clear_ray.evaluation.bench import ORACLE_DILATION_PX

    oracle_mask = metrics.dilate(mask_thw, ORACLE_DILATION_PX)
    out = subtitled.copy()
    for t in np.flatnonzero(oracle_mask.reshape(len(out), -1).any(axis=1)):
        out[t] = cv2.inpaint(subtitled[t], oracle_mask[t].astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return out


def score_clip(bench_dir: Path, clip: dict, lite, cache: dict, chunk_size: int = 81, overlap: int = 16) -> dict:
    from clear_ray.evaluation import metrics
    from clear_ray.evaluation.chunked_removal import run_chunked
    from clear_ray.synth.burnin import load_alpha
    from clear_ray.synth.video_io import read_video

    clean, _ = read_video(bench_dir / clip["paths"]["clean"])
    subtitled, _ = read_video(bench_dir / clip["paths"]["subtitled"])
    _, mask_thw = load_alpha(bench_dir / clip["paths"]["alpha"])
    text_thw = metrics.dilate(mask_thw, metrics.DILATION_PX)
    row: dict = {"clip": clip["id"], "language": clip["language"] or "none"}
    if clip["id"] not in cache:
        cache[clip["id"]] = {"input": _psnrs(subtitled, clean, text_thw),
                             "oracle": _psnrs(_oracle(subtitled, mask_thw), clean, text_thw)}
    row.update({f"{k}_{m}": v for k, scores in cache[clip["id"]].items() for m, v in scores.items()})
    output, predicted, seconds = run_chunked(lite, subtitled, chunk_size, overlap)
    row.update({f"lite_{m}": v for m, v in _psnrs(output, clean, text_thw).items()})
    pr = metrics.mask_precision_recall(predicted, mask_thw, tolerance_px=2)
    pred = predicted >= 0.5
    truth = mask_thw.astype(bool)
    union = int((pred | truth).sum())
    row.update(precision=pr["precision"], recall=pr["recall"],
               iou=float((pred & truth).sum() / union) if union else math.nan,
               masked_share=float(pred.mean()), ms_per_frame=1000.0 * seconds / len(subtitled))
    return row


def _mean(values) -> float:
    values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else math.nan


def summary(rows: list[dict]) -> str:
    lines = [f"{'clip':32} {'in_txt':>7} {'or_txt':>7} {'li_txt':>7} {'d_txt':>6} {'or_full':>7} {'li_full':>7} "
             f"{'d_full':>6} {'prec':>5} {'rec':>5} {'iou':>5} {'mshare':>7} {'ms/f':>5}"]
    for r in rows:
        lines.append(f"{r['clip']:32} {r['input_psnr_text']:7.2f} {r['oracle_psnr_text']:7.2f} {r['lite_psnr_text']:7.2f} "
                     f"{r['lite_psnr_text'] - r['oracle_psnr_text']:+6.2f} {r['oracle_psnr_full']:7.2f} "
                     f"{r['lite_psnr_full']:7.2f} {r['lite_psnr_full'] - r['oracle_psnr_full']:+6.2f} "
                     f"{r['precision']:5.3f} {r['recall']:5.3f} {r['iou']:5.3f} {r['masked_share']:7.4f} "
                     f"{r['ms_per_frame']:5.0f}")
    texted = [r for r in rows if r["language"] != "none"]
    lines.append(f"{'MEAN (texted)':32} {_mean(r['input_psnr_text'] for r in texted):7.2f} "
                 f"{_mean(r['oracle_psnr_text'] for r in texted):7.2f} {_mean(r['lite_psnr_text'] for r in texted):7.2f} "
                 f"{_mean(r['lite_psnr_text'] - r['oracle_psnr_text'] for r in texted):+6.2f} "
                 f"{_mean(r['oracle_psnr_full'] for r in texted):7.2f} {_mean(r['lite_psnr_full'] for r in texted):7.2f} "
                 f"{_mean(r['lite_psnr_full'] - r['oracle_psnr_full'] for r in texted):+6.2f} "
                 f"{_mean(r['precision'] for r in texted):5.3f} {_mean(r['recall'] for r in texted):5.3f} "
                 f"{_mean(r['iou'] for r in texted):5.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from clear_ray.config import LiteConfig, RemoverConfig
    from clear_ray.evaluation.benchset import load_manifest
    from clear_ray.removers.lite import LiteRemover

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("--split", default="dev", choices=("dev", "test"))
    parser.add_argument("--clips", default=None, help="comma-separated clip ids (default: the whole split)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="LiteConfig override")
    parser.add_argument("--cache", type=Path, default=None, help="JSON file caching the input/oracle rows")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args(argv)

    lite = LiteRemover(RemoverConfig(backend="lite", lite=LiteConfig(**dict(s.split("=", 1) for s in args.set))))
    clips = [c for c in load_manifest(args.bench_dir)["clips"] if c["split"] == args.split]
    if args.clips:
        clips = [c for c in clips if c["id"] in set(args.clips.split(","))]
    cache_path = args.cache or args.bench_dir / f".lite_dev_eval_cache_{args.split}.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    started = time.time()
    rows = []
    for clip in clips:
        rows.append(score_clip(args.bench_dir, clip, lite, cache))
        cache_path.write_text(json.dumps(cache))
        print(f"  {clip['id']}: lite txt {rows[-1]['lite_psnr_text']:.2f} full {rows[-1]['lite_psnr_full']:.2f}", flush=True)
    print(f"lite {lite.fingerprint()} on {len(rows)} {args.split} clips ({time.time() - started:.0f} s)")
    print(summary(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
