"""CLEAR's model resolution rule, and resizing a chunk to it and back.

CLEAR's inference (``calculate_target_resolution``) scales a frame down to at most
1280x720 pixels of area, floors both sides to multiples of 16 (the VAE downsamples 8x and
the DiT patches 2x2), then caps the short side at 720. We resize straight to that size
(CLEAR additionally centre-crops the few pixels the flooring changes the aspect ratio by;
a remover must return every source pixel, so we stretch by those pixels instead) and
resize the output back to the source size.
"""

from __future__ import annotations

import numpy as np

MULTIPLE = 16
MAX_SHORT_SIDE = 720
DEFAULT_MAX_AREA = 1280 * 720


def model_resolution(width: int, height: int, max_area: int = DEFAULT_MAX_AREA) -> tuple[int, int]:
    """(width, height) the model runs at for a ``width`` x ``height`` source."""
    if width < MULTIPLE or height < MULTIPLE:
        raise ValueError(f"frames of {width}x{height} are too small for CLEAR (at least {MULTIPLE}x{MULTIPLE})")
    target_w, target_h = width, height
    if width * height > max_area:
        scale = ((width * height) / max_area) ** 0.5
        target_w, target_h = int(width / scale), int(height / scale)
    target_w = target_w // MULTIPLE * MULTIPLE
    target_h = target_h // MULTIPLE * MULTIPLE
    # Same arithmetic as CLEAR's (scale first, then multiply), so floats truncate alike.
    if height > width:  # portrait: the width is the short side
        if target_w > MAX_SHORT_SIDE:
            scale = MAX_SHORT_SIDE / target_w
            target_w, target_h = MAX_SHORT_SIDE, int(target_h * scale) // MULTIPLE * MULTIPLE
    elif target_h > MAX_SHORT_SIDE:
        scale = MAX_SHORT_SIDE / target_h
        target_w, target_h = int(target_w * scale) // MULTIPLE * MULTIPLE, MAX_SHORT_SIDE
    if target_w < MULTIPLE or target_h < MULTIPLE:
        raise ValueError(f"frames of {width}x{height} leave no {MULTIPLE}x{MULTIPLE} model frame "
                         f"under max_area {max_area}")
    return target_w, target_h


def resize_frames(frames_thwc: np.ndarray, width: int, height: int) -> np.ndarray:
    """Each frame resized to ``width`` x ``height``: area averaging when shrinking (no
    aliasing of thin text strokes), bicubic when enlarging. Keeps the dtype."""
    import cv2

    source_h, source_w = frames_thwc.shape[1:3]
    if (source_w, source_h) == (width, height):
        return frames_thwc
    shrinking = width * height < source_w * source_h
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    resized = np.empty((frames_thwc.shape[0], height, width, frames_thwc.shape[3]), dtype=frames_thwc.dtype)
    for index, frame_hwc in enumerate(frames_thwc):
        resized[index] = cv2.resize(frame_hwc, (width, height), interpolation=interpolation)
    return resized
