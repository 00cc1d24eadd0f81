"""Pseudo-label masks from a (clean, subtitled) pair without alpha, as CLEAR's Stage I derives them.

CLEAR ``train_stage1.py``: frames are mapped to [-1, 1]; diff = mean over channels of
|subtitled - clean|; a pixel is text when diff > max(mean + std, 0.01) of its frame; a
frame is kept for training only when at least 0.12 % of its pixels differ by more than 0.1.
"""

from __future__ import annotations

import numpy as np

MIN_THRESHOLD = 0.01
CHANGED_LEVEL = 0.1
MIN_CHANGED_SHARE = 0.0012  # 0.12 %


def difference_thw(clean_thwc_u8: np.ndarray, subtitled_thwc_u8: np.ndarray) -> np.ndarray:
    """Mean absolute difference over channels on [-1, 1] values, (T, H, W) float32."""
    if clean_thwc_u8.shape != subtitled_thwc_u8.shape:
        raise ValueError(f"clean {clean_thwc_u8.shape} and subtitled {subtitled_thwc_u8.shape} differ in shape")
    # |a/127.5 - 1 - (b/127.5 - 1)| = |a - b| / 127.5
    delta = np.abs(subtitled_thwc_u8.astype(np.int16) - clean_thwc_u8.astype(np.int16))
    return delta.mean(axis=-1, dtype=np.float32) / np.float32(127.5)


def pseudo_labels(clean_thwc_u8: np.ndarray, subtitled_thwc_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask (T, H, W) bool, keep (T,) bool) by CLEAR Stage I's rule (see the module doc)."""
    diff_thw = difference_thw(clean_thwc_u8, subtitled_thwc_u8)
    t = diff_thw.shape[0]
    flat = diff_thw.reshape(t, -1)
    threshold_t = np.maximum(flat.mean(axis=1) + flat.std(axis=1), MIN_THRESHOLD)
    mask_thw = diff_thw > threshold_t[:, None, None]
    keep_t = (flat > CHANGED_LEVEL).mean(axis=1) >= MIN_CHANGED_SHARE
    return mask_thw, keep_t
