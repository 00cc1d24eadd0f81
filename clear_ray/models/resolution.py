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


class CoverCrop:
    """CLEAR's released resizing, for users who must match its outputs: scale the frame to
    *cover* the model size (aspect ratio kept), centre-crop to it, and map the model's
    output back. Source pixels the crop cut off were never seen by the model: ``to_source``
    marks them invalid, and the remover keeps the source there (mask 0)."""

    def __init__(self, source_w: int, source_h: int, model_w: int, model_h: int):
        self.source_w, self.source_h, self.model_w, self.model_h = source_w, source_h, model_w, model_h
        self.scale = max(model_w / source_w, model_h / source_h)
        self.cover_w = max(model_w, round(source_w * self.scale))
        self.cover_h = max(model_h, round(source_h * self.scale))
        self.offset_x = (self.cover_w - model_w) // 2
        self.offset_y = (self.cover_h - model_h) // 2

    def to_model(self, frames_thwc: np.ndarray) -> np.ndarray:
        covered = resize_frames(frames_thwc, self.cover_w, self.cover_h)
        return np.ascontiguousarray(covered[:, self.offset_y:self.offset_y + self.model_h,
                                            self.offset_x:self.offset_x + self.model_w])

    def to_source(self, frames_thwc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model-size frames back at the source size, and the (H, W) bool of source pixels
        the model saw (elsewhere the returned pixels are 0)."""
        import cv2

        # Model pixel (mx, my) is cover pixel (mx + ox, my + oy); pixel centres as cv2.resize
        # places them: source = (cover + 0.5) * cover_size / source_size - 0.5.
        sx, sy = self.source_w / self.cover_w, self.source_h / self.cover_h
        matrix = np.array([[sx, 0.0, (self.offset_x + 0.5) * sx - 0.5],
                           [0.0, sy, (self.offset_y + 0.5) * sy - 0.5]], np.float64)
        size = (self.source_w, self.source_h)
        inverse = cv2.WARP_INVERSE_MAP
        back = np.empty((frames_thwc.shape[0], self.source_h, self.source_w, frames_thwc.shape[3]), frames_thwc.dtype)
        # warpAffine with WARP_INVERSE_MAP takes the source->model map: invert the model->source one.
        forward = cv2.invertAffineTransform(matrix)
        for index, frame_hwc in enumerate(frames_thwc):
            back[index] = cv2.warpAffine(frame_hwc, forward, size, flags=cv2.INTER_CUBIC | inverse,
                                         borderMode=cv2.BORDER_REPLICATE)
        # Seen: the source pixel's centre falls on the model frame (model coordinates within
        # half a pixel of its edge pixels' centres).
        model_x = (np.arange(self.source_w) + 0.5) / sx - 0.5 - self.offset_x
        model_y = (np.arange(self.source_h) + 0.5) / sy - 0.5 - self.offset_y
        seen_x = (model_x >= -0.5) & (model_x <= self.model_w - 0.5)
        seen_y = (model_y >= -0.5) & (model_y <= self.model_h - 0.5)
        seen_hw = seen_y[:, None] & seen_x[None, :]
        back[:, ~seen_hw] = 0
        return back, seen_hw
