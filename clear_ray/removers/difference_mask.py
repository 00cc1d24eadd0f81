"""A soft mask of where a remover's output differs strongly from what it was given.

CLEAR is mask-free: it regenerates the whole frame through the VAE, which costs a little
sharpness and colour everywhere. Where the model did not change anything that matters,
the shared compositor should keep the source pixel exactly; where it removed text, the
model's pixel. This module finds the second kind of place:

1. change = largest per-channel |output - reference|, averaged over a small box. The
   reference is, best, the model's own *reconstruction* of its input (the control latents
   decoded, no removal): the VAE's drift (fine texture, fast motion, dark or saturated
   colours, upscaling) is in both and cancels, so the threshold can sit at the text's own
   contrast and low-contrast text and semi-transparent boxes still open the mask. Without
   a reconstruction the reference is the input and the threshold must stay above the
   drift;
2. changed regions grow by ``dilate_px`` (anti-aliased outlines and halos), then get a
   linear soft edge ``feather_px`` wide: 1 inside, exactly 0 beyond the edge;
3. in time, a miss of up to ``temporal_gap`` frames inside a cue is closed (the text was
   there before and after it: a one-frame miss would flash the text), and the mask fades
   in and out over ``temporal_radius`` frames only at a cue's edges.

Values are float32 in [0, 1] and exactly 0 wherever no changed pixel lies within the
dilation + feather distance and the temporal radius.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from clear_ray.config import DifferenceMaskConfig


def difference_mask(source_thwc_u8: np.ndarray, output_thwc_u8: np.ndarray,
                    settings: "DifferenceMaskConfig",
                    reconstruction_thwc_u8: np.ndarray | None = None) -> np.ndarray:
    """(T, H, W) float32 mask in [0, 1] of where ``output`` changed ``source``.

    ``reconstruction_thwc_u8``, when given, is what the model makes of ``source`` without
    removing anything; the output is compared with it at ``settings.reconstruction_threshold``
    instead of with the source at ``settings.threshold``."""
    if source_thwc_u8.shape != output_thwc_u8.shape or source_thwc_u8.ndim != 4:
        raise ValueError(f"source {source_thwc_u8.shape} and output {output_thwc_u8.shape} must both be (T,H,W,C)")
    if reconstruction_thwc_u8 is not None and reconstruction_thwc_u8.shape != source_thwc_u8.shape:
        raise ValueError(f"reconstruction {reconstruction_thwc_u8.shape} must match source {source_thwc_u8.shape}")
    if reconstruction_thwc_u8 is None:
        reference_thwc_u8, threshold = source_thwc_u8, settings.threshold
    else:
        reference_thwc_u8, threshold = reconstruction_thwc_u8, settings.reconstruction_threshold
    changed_thw = np.stack([
        changed_pixels(ref_hwc, out_hwc, threshold, settings.smoothing_px)
        for ref_hwc, out_hwc in zip(reference_thwc_u8, output_thwc_u8)
    ])
    changed_thw = close_gaps(changed_thw, settings.temporal_gap)
    soft_thw = np.stack([feather(changed_hw, settings.dilate_px, settings.feather_px) for changed_hw in changed_thw])
    return temporal_fade(soft_thw, settings.temporal_radius)


def close_gaps(changed_thw: np.ndarray, max_gap: int) -> np.ndarray:
    """(T, H, W) bool: a pixel off for at most ``max_gap`` consecutive frames between two
    frames where it is on is switched on (a temporal closing). Off-runs that touch the
    window's first or last frame stay off, so the fade still marks where a cue appears
    and disappears."""
    if max_gap == 0 or len(changed_thw) < 3:
        return changed_thw
    changed_thw = changed_thw.astype(bool, copy=False)
    off_thw = ~changed_thw
    frames = len(changed_thw)
    # Per pixel and frame, the off-run through it: frames off up to and including t
    # (run_back) and from t on (run_fwd).
    run_back = np.zeros(changed_thw.shape, np.int32)
    run_fwd = np.zeros(changed_thw.shape, np.int32)
    run_back[0] = off_thw[0]
    for t in range(1, frames):
        run_back[t] = np.where(off_thw[t], run_back[t - 1] + 1, 0)
    run_fwd[-1] = off_thw[-1]
    for t in range(frames - 2, -1, -1):
        run_fwd[t] = np.where(off_thw[t], run_fwd[t + 1] + 1, 0)
    t_index = np.arange(frames).reshape(-1, *([1] * (changed_thw.ndim - 1)))
    bounded = (run_back <= t_index) & (t_index + run_fwd <= frames - 1)  # an on-frame on each side
    short = run_back + run_fwd - 1 <= max_gap
    return changed_thw | (off_thw & bounded & short)


def changed_pixels(source_hwc_u8: np.ndarray, output_hwc_u8: np.ndarray, threshold: float,
                   smoothing_px: int) -> np.ndarray:
    """(H, W) bool: the box-averaged largest channel change exceeds ``threshold``."""
    import cv2

    change_hw = np.abs(output_hwc_u8.astype(np.int16) - source_hwc_u8.astype(np.int16)).max(axis=2)
    if smoothing_px > 1:
        change_hw = cv2.blur(change_hw.astype(np.float32), (smoothing_px, smoothing_px),
                             borderType=cv2.BORDER_REFLECT)
    return change_hw > threshold


def feather(changed_hw: np.ndarray, dilate_px: int, feather_px: int) -> np.ndarray:
    """(H, W) float32: 1 on ``changed`` grown by ``dilate_px``, then a linear ramp down to
    exactly 0 over the next ``feather_px`` pixels (rounded up to even)."""
    import cv2

    core_hw = _dilate(changed_hw.astype(np.uint8), dilate_px)
    if feather_px == 0:
        return core_hw.astype(np.float32)
    # A box blur (radius r) of the core grown by r is exactly 1 on the core (every box
    # around a core pixel lies inside the grown region), falls linearly over 2r pixels and
    # is exactly 0 once the box no longer reaches the grown region: a ramp of finite
    # support, unlike a Gaussian's tails.
    radius = (feather_px + 1) // 2
    size = 2 * radius + 1
    grown_hw = _dilate(core_hw, radius).astype(np.float32)
    soft_hw = cv2.blur(grown_hw, (size, size), borderType=cv2.BORDER_REPLICATE)
    soft_hw[core_hw.astype(bool)] = 1.0  # the box sum of ones is 1 up to float rounding
    soft_hw[soft_hw < 0.5 / (size * size)] = 0.0  # rounding residue where the box sum is 0
    return np.clip(soft_hw, 0.0, 1.0, out=soft_hw)


def temporal_fade(soft_thw: np.ndarray, radius: int) -> np.ndarray:
    """Each frame's mask = max over neighbours within ``radius`` frames, weighted
    1 - distance / (radius + 1): a change fades in before and out after itself."""
    if radius == 0:
        return soft_thw.astype(np.float32, copy=False)
    faded_thw = soft_thw.astype(np.float32, copy=True)
    frames = soft_thw.shape[0]
    for distance in range(1, radius + 1):
        weight = np.float32(1.0 - distance / (radius + 1))
        if distance >= frames:
            break
        np.maximum(faded_thw[distance:], weight * soft_thw[:-distance], out=faded_thw[distance:])
        np.maximum(faded_thw[:-distance], weight * soft_thw[distance:], out=faded_thw[:-distance])
    return faded_thw


def _dilate(mask_hw_u8: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    if radius == 0 or not mask_hw_u8.any():
        return mask_hw_u8
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask_hw_u8, kernel)
