"""Score one benchmark clip: the reference rows (``input``, ``oracle-telea``) and the
backend's row. One call is one unit of parallel work (``parallel.py``); everything it needs
travels as paths and small settings, and it returns plain dicts.

The reference rows do not depend on the remover under test, so ``bench run`` caches them
(``reference_cache.py``) together with the clean clip's and theirs VFID features; a call
given cached rows only scores the backend.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clear_ray.evaluation import metrics
from clear_ray.evaluation.perceptual import PerceptualConfig

INPUT_ROW = "input"
ORACLE_ROW = "oracle-telea"
ORACLE_DILATION_PX = 2
MASK_TOLERANCE_PX = 2


@dataclass(frozen=True)
class BackendOutput:
    """What the pipeline produced for one clip (path None when it produced nothing)."""
    path: str | None
    seconds: float
    status: str


@dataclass(frozen=True)
class MaskSpec:
    """How to recover the remover's own mask (the pipeline keeps none): its settings and
    the job's chunk plan, rerun in the scoring worker."""
    remover_config: Any
    chunk_size: int
    overlap: int
    blend: str


@dataclass(frozen=True)
class ClipTask:
    bench_dir: str
    clip: dict[str, Any]
    backend: str
    output: BackendOutput | None
    perceptual: PerceptualConfig
    mask: MaskSpec | None = None
    cached: dict[str, Any] | None = None  # {"rows": [...], "vfid": {"clean": [...], method: [...]}}


def score_clip(task: ClipTask) -> dict[str, Any]:
    """{"reference": {"rows", "vfid"} (cached or computed), "backend_row", "backend_vfid",
    "reference_computed": bool}."""
    import cv2

    from clear_ray.synth.burnin import load_alpha
    from clear_ray.synth.video_io import read_video

    from clear_ray.evaluation.perceptual import Scorers

    bench_dir, clip = Path(task.bench_dir), task.clip
    clean, _ = read_video(bench_dir / clip["paths"]["clean"])
    subtitled, _ = read_video(bench_dir / clip["paths"]["subtitled"])
    _, mask_thw = load_alpha(bench_dir / clip["paths"]["alpha"])
    if not clean.shape == subtitled.shape or clean.shape[:3] != mask_thw.shape:
        raise ValueError(f"{clip['id']}: clean {clean.shape}, subtitled {subtitled.shape} and "
                         f"mask {mask_thw.shape} disagree")
    scorers = Scorers(task.perceptual)
    reference_pairs = metrics.flow_pairs(clean)
    frames = len(clean)

    def score(method: str, output: np.ndarray | None, seconds: float, predicted_mask: np.ndarray | None,
              status: str = "done") -> dict[str, Any]:
        row = {"method": method, "clip": clip["id"], "language": clip["language"] or "none",
               "frames": frames, "status": status}
        if output is not None and output.shape != clean.shape:
            row["status"] = f"output shape {output.shape} != {clean.shape}"
            output = None
        if output is not None:
            row.update(metrics.region_scores(output, clean, mask_thw))
            row.update(metrics.temporal_scores(output, clean, reference_pairs))
            row["seconds_per_frame"] = metrics.seconds_per_frame(seconds, frames)
            row.update(scorers.frame_scores(output, clean))
            if predicted_mask is not None:
                pr = metrics.mask_precision_recall(predicted_mask, mask_thw, tolerance_px=MASK_TOLERANCE_PX)
                row.update(mask_precision=pr["precision"], mask_recall=pr["recall"],
                           mask_fpr=pr["false_positive_rate"])
        return row

    def features(frames_thwc: np.ndarray | None) -> list[float] | None:
        return None if scorers.vfid is None or frames_thwc is None else scorers.vfid(frames_thwc).tolist()

    reference = task.cached
    if reference is None:
        started = time.perf_counter()
        oracle_mask = metrics.dilate(mask_thw, ORACLE_DILATION_PX)
        oracle = subtitled.copy()
        for index in np.flatnonzero(oracle_mask.reshape(frames, -1).any(axis=1)):
            oracle[index] = cv2.inpaint(subtitled[index], oracle_mask[index].astype(np.uint8), 3,
                                        cv2.INPAINT_TELEA)
        oracle_seconds = time.perf_counter() - started
        reference = {"rows": [score(INPUT_ROW, subtitled, 0.0, None),
                              score(ORACLE_ROW, oracle, oracle_seconds, oracle_mask)],
                     "vfid": {"clean": features(clean), INPUT_ROW: features(subtitled), ORACLE_ROW: features(oracle)}}

    output, backend_vfid = task.output, None
    if output is None:
        backend_row = score(task.backend, None, math.nan, None, status="not run")
    elif output.path is None:
        backend_row = score(task.backend, None, output.seconds, None, status=output.status)
    else:
        produced, _ = read_video(output.path)
        predicted_mask = _remover_mask(task.mask, subtitled) if task.mask is not None else None
        backend_row = score(task.backend, produced, output.seconds, predicted_mask, status=output.status)
        if backend_row["status"] == "done":
            backend_vfid = features(produced)
    return {"reference": reference, "backend_row": backend_row, "backend_vfid": backend_vfid,
            "reference_computed": task.cached is None}


def _remover_mask(spec: MaskSpec, frames_thwc_u8: np.ndarray) -> np.ndarray:
    from clear_ray.evaluation.chunked_removal import run_chunked
    from clear_ray.removers import load_remover

    remover = load_remover(spec.remover_config)
    _, mask_thw, _ = run_chunked(remover, frames_thwc_u8, spec.chunk_size, spec.overlap, spec.blend)
    return mask_thw
