"""Quality metrics for subtitle removal, per clip, against the clean reference.

Conventions (all frames RGB uint8, (T, H, W, 3)):

- Regions. ``text`` = the true binary mask dilated by ``dilation_px`` (a disc), which also
  covers the ring that 4:2:0 chroma and codec ringing smear around glyphs; ``rest`` = the
  complement; ``full`` = every pixel.
- PSNR (dB) per frame over a region: ``10 log10(255^2 / MSE)`` over its pixels and the three
  channels; identical pixels give the cap ``PSNR_CAP_DB`` (100 dB) instead of infinity. A
  clip's PSNR is the mean over frames whose region is non-empty (the convention of video
  inpainting benchmarks, e.g. ProPainter); NaN ("n/a") when no frame has the region.
- SSIM: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
  population statistics, per channel then averaged (as ``skimage.metrics.
  structural_similarity(gaussian_weights=True, use_sample_covariance=False,
  channel_axis=-1)``); a region's SSIM is the mean of the SSIM map over its pixels.
- Temporal metrics use OpenCV DIS optical flow between consecutive OUTPUT frames (see
  ``warping_error``). CLEAR's README reports "TWE", "TC", "Flow Mean" and "Flow Var"
  (all lower-is-better, e.g. 1.227 / 1.049 / 0.209 / 0.029 on its Chinese test set) without
  defining them in its released code; we use these definitions:
  TWE = the warping error of Lai et al. (ECCV 2018) in units of 1e-3 (as ProPainter reports
  E_warp); TC = TWE(output) / TWE(clean reference), so 1.0 means "as temporally stable as
  the clean video" and flicker pushes it above 1; Flow Mean / Flow Var = mean / variance
  of the end-point distance (pixels) between the output's flow and the clean video's flow.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

PSNR_CAP_DB = 100.0
DILATION_PX = 4
SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
# On [0,1]^2 warping errors (about the noise of a 0.6-level std): keeps TC finite and
# meaningful when the clean clip itself warps almost perfectly (a slow pan over a photo).
TC_EPSILON = 1e-5


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, cap_db: float = PSNR_CAP_DB) -> float:
    """PSNR in dB of two uint8 images over ``mask`` (bool, H x W; None = all pixels)."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    if mask is not None:
        if not mask.any():
            return math.nan
        diff = diff[mask]
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return cap_db
    return min(cap_db, 10.0 * math.log10(255.0 ** 2 / mse))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (H x W), averaged over the channels."""
    import cv2

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    # float32 for speed; (co)variances from values centred on 128 so that E[x^2] - E[x]^2
    # does not cancel catastrophically in single precision.
    x, y = a.astype(np.float32) - 128.0, b.astype(np.float32) - 128.0

    def blur(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    mu_xc, mu_yc = blur(x), blur(y)
    var_x = blur(x * x) - mu_xc * mu_xc
    var_y = blur(y * y) - mu_yc * mu_yc
    cov = blur(x * y) - mu_xc * mu_yc
    mu_x, mu_y = mu_xc + 128.0, mu_yc + 128.0
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return value.mean(axis=-1) if value.ndim == 3 else value


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean SSIM over ``mask`` (None = whole frame); NaN for an empty mask."""
    values = ssim_map(a, b)
    if mask is None:
        return float(values.mean())
    return float(values[mask].mean()) if mask.any() else math.nan


def dilate(mask_thw: np.ndarray, radius_px: int) -> np.ndarray:
    """Binary dilation of each frame's mask by a disc of ``radius_px``."""
    import cv2

    mask_u8 = mask_thw.astype(np.uint8)
    if radius_px <= 0:
        return mask_u8.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius_px + 1, 2 * radius_px + 1))
    return np.stack([cv2.dilate(frame, kernel) for frame in mask_u8]).astype(bool)


def region_scores(output_thwc: np.ndarray, reference_thwc: np.ndarray, mask_thw: np.ndarray,
                  dilation_px: int = DILATION_PX) -> dict[str, float]:
    """PSNR and SSIM of ``output`` against ``reference`` over full / text / rest regions."""
    _check_pair(output_thwc, reference_thwc)
    text_thw = dilate(mask_thw, dilation_px)
    per_frame: dict[str, list[float]] = {f"{m}_{r}": [] for m in ("psnr", "ssim") for r in ("full", "text", "rest")}
    for out, ref, text in zip(output_thwc, reference_thwc, text_thw):
        ssim_hw = ssim_map(out, ref)
        for region, mask in (("full", None), ("text", text), ("rest", ~text)):
            if mask is not None and not mask.any():
                continue
            per_frame[f"psnr_{region}"].append(psnr(out, ref, mask))
            per_frame[f"ssim_{region}"].append(float(ssim_hw.mean() if mask is None else ssim_hw[mask].mean()))
    return {name: float(np.mean(values)) if values else math.nan for name, values in per_frame.items()}


def dis_flow(from_hwc: np.ndarray, to_hwc: np.ndarray) -> np.ndarray:
    """DIS optical flow (H, W, 2) such that ``from(x) ~ to(x + flow(x))``."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_gray(from_hwc), _gray(to_hwc), None)


def warp(image_hwc: np.ndarray, flow_hw2: np.ndarray) -> np.ndarray:
    """``image`` sampled at x + flow(x) (bilinear), float32."""
    import cv2

    h, w = flow_hw2.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image_hwc.astype(np.float32), grid_x + flow_hw2[..., 0], grid_y + flow_hw2[..., 1],
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class FlowPair:
    backward_hw2: np.ndarray  # frame t -> frame t-1
    valid_hw: np.ndarray  # bool: inside the frame and forward-backward consistent


def flow_pairs(frames_thwc: np.ndarray) -> list[FlowPair]:
    """For each t >= 1, the flow t -> t-1 and its non-occluded pixels: the forward-backward
    check of Sundaram et al. (ECCV 2010), as Lai et al. use it:
    |f_b(x) + f_f(x + f_b(x))|^2 < 0.01 (|f_b|^2 + |f_f(x + f_b)|^2) + 0.5."""
    from concurrent.futures import ThreadPoolExecutor

    h, w = frames_thwc.shape[1:3]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))

    def pair(t: int) -> FlowPair:
        backward = dis_flow(frames_thwc[t], frames_thwc[t - 1])
        forward = dis_flow(frames_thwc[t - 1], frames_thwc[t])
        forward_at = warp(forward, backward)
        round_trip = backward + forward_at
        lhs = (round_trip ** 2).sum(-1)
        rhs = 0.01 * ((backward ** 2).sum(-1) + (forward_at ** 2).sum(-1)) + 0.5
        target_x, target_y = grid_x + backward[..., 0], grid_y + backward[..., 1]
        inside = (target_x >= 0) & (target_x <= w - 1) & (target_y >= 0) & (target_y <= h - 1)
        return FlowPair(backward, (lhs < rhs) & inside)

    # DIS runs single-threaded and releases the GIL: one pair per core.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return list(pool.map(pair, range(1, len(frames_thwc))))


def warping_error(frames_thwc: np.ndarray, pairs: list[FlowPair] | None = None) -> float:
    """Lai et al.'s E_warp on [0,1] RGB: mean over t >= 1 of the mean squared difference
    between frame t and frame t-1 warped to t by the DIS flow of these same frames, over
    the non-occluded pixels. 0 for a perfectly consistent (e.g. rigidly shifting) video;
    independent noise of std s per frame adds about 2 s^2."""
    if len(frames_thwc) < 2:
        return math.nan
    pairs = flow_pairs(frames_thwc) if pairs is None else pairs
    errors = []
    for t, pair in enumerate(pairs, start=1):
        if not pair.valid_hw.any():
            continue
        warped = warp(frames_thwc[t - 1], pair.backward_hw2)
        diff = (frames_thwc[t].astype(np.float32) - warped) / 255.0
        errors.append(float((diff[pair.valid_hw] ** 2).mean()))
    return float(np.mean(errors)) if errors else math.nan


def temporal_scores(output_thwc: np.ndarray, reference_thwc: np.ndarray,
                    reference_pairs: list[FlowPair] | None = None) -> dict[str, float]:
    """TWE (x1e-3), TC, Flow Mean and Flow Var (pixels) of ``output``; see the module doc.
    Pass ``reference_pairs`` (``flow_pairs(reference)``) to reuse them across methods."""
    _check_pair(output_thwc, reference_thwc)
    if len(output_thwc) < 2:
        return {"twe": math.nan, "tc": math.nan, "flow_mean": math.nan, "flow_var": math.nan}
    output_pairs = flow_pairs(output_thwc)
    reference_pairs = flow_pairs(reference_thwc) if reference_pairs is None else reference_pairs
    twe_out = warping_error(output_thwc, output_pairs)
    twe_ref = warping_error(reference_thwc, reference_pairs)
    distances = np.concatenate([np.linalg.norm(o.backward_hw2 - r.backward_hw2, axis=-1).ravel()
                                for o, r in zip(output_pairs, reference_pairs)])
    return {"twe": twe_out * 1e3, "tc": (twe_out + TC_EPSILON) / (twe_ref + TC_EPSILON),
            "flow_mean": float(distances.mean()), "flow_var": float(distances.var())}


def mask_precision_recall(predicted_thw: np.ndarray, true_thw: np.ndarray, threshold: float = 0.5,
                          tolerance_px: int = 0) -> dict[str, float]:
    """Pixel precision and recall of a remover's mask against the true mask, summed over
    all frames of a clip. ``predicted`` may be soft (float in [0,1] or uint8 0..255): it is
    binarised at ``threshold`` of its range. With ``tolerance_px`` > 0 a predicted pixel
    counts as correct within that distance of true text, and a true pixel as found within
    that distance of a prediction. ``false_positive_rate`` is the share of text-free pixels
    (beyond the tolerance) marked as text: on a clip without text it is the whole story."""
    scale = 255.0 if predicted_thw.dtype == np.uint8 else 1.0
    predicted = predicted_thw.astype(np.float32) >= threshold * scale
    true = true_thw.astype(bool)
    if predicted.shape != true.shape:
        raise ValueError(f"mask shapes differ: {predicted.shape} vs {true.shape}")
    true_near = dilate(true, tolerance_px)
    predicted_near = dilate(predicted, tolerance_px)
    n_predicted, n_true, n_free = int(predicted.sum()), int(true.sum()), int((~true_near).sum())
    return {
        "precision": float((predicted & true_near).sum() / n_predicted) if n_predicted else math.nan,
        "recall": float((true & predicted_near).sum() / n_true) if n_true else math.nan,
        "false_positive_rate": float((predicted & ~true_near).sum() / n_free) if n_free else math.nan,
    }


def seconds_per_frame(seconds: float, frames: int) -> float:
    return seconds / frames if frames else math.nan


def _gray(frame_hwc: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame_hwc, dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"output and reference shapes differ: {a.shape} vs {b.shape}")
