"""A soft mask of where a remover's output differs strongly from its input.

CLEAR is mask-free: it regenerates the whole frame through the VAE, which costs a little
sharpness and colour everywhere. Where the model did not change anything that matters,
the shared compositor should keep the source pixel exactly; where it removed text, the
model's pixel. This module finds the second kind of place from the two videos alone:

1. change = largest per-channel |output - input|, averaged over a small box, so the VAE's
   scattered reconstruction error stays below the threshold while a removed text stroke
   (a strong, connected change) exceeds it;
2. changed regions grow by ``dilate_px`` (anti-aliased outlines and halos), then get a
   linear soft edge ``feather_px`` wide: 1 inside, exactly 0 beyond the edge;
3. the mask fades in and out over ``temporal_radius`` frames around each change, so a
   subtitle that the threshold catches in one frame and misses in the next does not
   flicker between model and source pixels.

Values are float32 in [0, 1] and exactly 0 wherever no changed pixel lies within the
dilation + feather distance and the temporal radius.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from clear_ray.config import DifferenceMaskConfig


def difference_mask(source_thwc_u8: np.ndarray, output_thwc_u8: np.ndarray,
                    settings: "DifferenceMaskConfig") -> np.ndarray:
    """(T, H, W) float32 mask in [0, 1] of where ``output`` changed ``source``."""
    if source_thwc_u8.shape != output_thwc_u8.shape or source_thwc_u8.ndim != 4:
        raise ValueError(f"source {source_thwc_u8.shape} and output {output_thwc_u8.shape} must both be (T,H,W,C)")
    changed_thw = np.stack([
        changed_pixels(src_hwc, out_hwc, settings.threshold, settings.smoothing_px)
        for src_hwc, out_hwc in zip(source_thwc_u8, output_thwc_u8)
    ])
    soft_thw = np.stack([feather(changed_hw, settings.dilate_px, settings.feather_px) for changed_hw in changed_thw])
    return temporal_fade(soft_thw, settings.temporal_radius)


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
