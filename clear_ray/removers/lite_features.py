"""Input features of the lite text segmenter, shared by inference and its training script.

Burned-in text is drawn at the same place in every frame of a cue while the picture behind
it changes, so besides the colours of a frame the segmenter sees how much each pixel
changes towards earlier and later frames. "Low" takes the calmer of the two directions,
so text that appears or vanishes a few frames away still reads as static on its own side;
"high" takes the busier one, so the background's motion shows even next to a cue change.
Everything here works at the detector's working resolution (see ``working_size``).
"""

from __future__ import annotations

import numpy as np

# Frame distances compared for the stability maps: short ones see fast motion, long ones
# slow pans; mean absolute differences at these offsets are averaged per direction.
STABILITY_OFFSETS: tuple[int, ...] = (2, 4, 8)
# Grey-level change that saturates a stability channel (codec noise is ~1-3 levels).
STABILITY_SCALE = 48.0
INPUT_CHANNELS = 5


def working_size(height: int, width: int, detect_short_side: int) -> tuple[int, int]:
    """(h, w) the detector runs at: the short side brought down to ``detect_short_side``
    (never up), so subtitle strokes land at a similar pixel size whatever the video size."""
    scale = min(1.0, detect_short_side / float(min(height, width)))
    return max(8, int(round(height * scale))), max(8, int(round(width * scale)))


def to_gray_f32(rgb_hwc_u8: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb_hwc_u8, cv2.COLOR_RGB2GRAY).astype(np.float32)


def stability_maps(
    gray_thw_f32: np.ndarray,
    t: int,
    offsets: tuple[int, ...] = STABILITY_OFFSETS,
    use_before: bool = True,
    use_after: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) mean absolute grey change of frame ``t`` towards the calmer and the busier
    time direction, each (h, w) float32. A side with no frames borrows the other side's map;
    with neither (a one-frame clip) both are zero."""
    frames = gray_thw_f32.shape[0]
    sides = []
    for sign, allowed in ((-1, use_before), (1, use_after)):
        others = [t + sign * k for k in offsets if 0 <= t + sign * k < frames] if allowed else []
        if others:
            diffs = [np.abs(gray_thw_f32[t] - gray_thw_f32[o]) for o in others]
            sides.append(np.mean(diffs, axis=0, dtype=np.float32))
    if not sides:
        zero = np.zeros(gray_thw_f32.shape[1:], np.float32)
        return zero, zero
    if len(sides) == 1:
        return sides[0], sides[0]
    return np.minimum(sides[0], sides[1]), np.maximum(sides[0], sides[1])


def detector_input(rgb_hwc_u8: np.ndarray, low_hw: np.ndarray, high_hw: np.ndarray) -> np.ndarray:
    """The (5, h, w) float32 network input: centred RGB plus the two stability maps."""
    rgb_chw = rgb_hwc_u8.transpose(2, 0, 1).astype(np.float32) * (1.0 / 255.0) - 0.5
    low = np.clip(low_hw * (1.0 / STABILITY_SCALE), 0.0, 1.0)[None]
    high = np.clip(high_hw * (1.0 / STABILITY_SCALE), 0.0, 1.0)[None]
    return np.concatenate([rgb_chw, low, high], axis=0).astype(np.float32, copy=False)
