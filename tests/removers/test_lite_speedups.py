"""lite's shortcuts must not change what it computes: partial shrinking, the box hint,
flows skipped on hole-free frames and single-frame sampling give the full path's values."""

from __future__ import annotations

import numpy as np

from clear_ray.removers.lite_detect import (
    DetectSettings,
    box_masks,
    frames_read,
    keyframe_indices,
    masks_in_region,
    shrink_frames,
)
from clear_ray.removers.lite_features import STABILITY_OFFSETS, stability_maps
from clear_ray.removers.lite_fill import FillSettings, fill_holes, fill_margin, sample_bilinear

from tests.removers.test_lite_fill import _pan, _psnr


def test_partial_shrink_matches_full_shrink_on_every_frame_the_detector_reads():
    frames_thwc_u8 = np.random.default_rng(0).integers(0, 256, (23, 60, 100, 3), dtype=np.uint8)
    keys = keyframe_indices(len(frames_thwc_u8), 4)
    needed = frames_read(len(frames_thwc_u8), keys)
    assert set(keys) <= set(needed) and len(needed) < len(frames_thwc_u8)
    small_all, gray_all = shrink_frames(frames_thwc_u8, (30, 50))
    small, gray = shrink_frames(frames_thwc_u8, (30, 50), needed)
    assert np.array_equal(small[needed], small_all[needed]) and np.array_equal(gray[needed], gray_all[needed])
    for t in keys:  # the stability maps see only shrunk frames
        for got, want in zip(stability_maps(gray, t, STABILITY_OFFSETS), stability_maps(gray_all, t, STABILITY_OFFSETS)):
            assert np.array_equal(got, want)


def test_box_hint_and_hole_free_frames_leave_the_fill_unchanged():
    clean = _pan(step_px=3.0, frames=11)
    hole = np.zeros(clean.shape[:3], bool)
    hole[3:8, 70:84, 30:100] = True  # frames 0-2 and 8-10 have no hole: no flow is computed there
    damaged = clean.copy()
    damaged[hole] = 255
    plain = fill_holes(damaged, hole, FillSettings())
    hinted = fill_holes(damaged, hole, FillSettings(), box=(60, 90, 20, 110))
    assert np.array_equal(plain, hinted)
    assert np.array_equal(plain[~hole], damaged[~hole])
    assert _psnr(plain, clean, hole) > 25.0  # still borrowed from the frames around
    assert np.array_equal(fill_holes(damaged, np.zeros_like(hole), FillSettings(), box=(0, 96, 0, 128)), damaged)


def test_filling_a_crop_around_the_holes_equals_filling_the_whole_frames():
    """lite fills only a crop holding the holes plus the fill's context margin; told the
    whole frame's size, the fill must give the whole-frame fill's pixels there."""
    clean = _pan(step_px=3.0, frames=11)
    hole = np.zeros(clean.shape[:3], bool)
    hole[2:9, 40:52, 30:100] = True
    damaged = clean.copy()
    damaged[hole] = 255
    whole = fill_holes(damaged, hole, FillSettings())
    frame_hw = clean.shape[1:3]
    margin = fill_margin(FillSettings(), frame_hw)
    y0, y1, x0, x1 = 40 - margin - 3, 52 + margin + 3, 30 - margin - 1, 100 + margin + 1
    crop = fill_holes(damaged[:, y0:y1, x0:x1], hole[:, y0:y1, x0:x1], FillSettings(), frame_hw=frame_hw)
    assert np.array_equal(crop, whole[:, y0:y1, x0:x1])
    assert _psnr(whole, clean, hole) > 25.0


def test_masks_in_a_region_equal_the_full_frame_masks_there():
    prob_thw = np.zeros((7, 30, 50), np.float32)
    prob_thw[1:5, 20:25, 10:40] = np.linspace(0.3, 0.9, 30, dtype=np.float32)
    prob_thw[3, 2:6, 5:9] = 0.8
    settings = DetectSettings(dilate_px=1.0, feather_px=2)
    whole = masks_in_region(prob_thw, (120, 200), (0, 120, 0, 200), settings)
    detection = box_masks(prob_thw, (120, 200), settings)
    assert detection.box is not None
    for region in [detection.box, (70, 110, 30, 170)]:
        y0, y1, x0, x1 = region
        assert np.array_equal(masks_in_region(prob_thw, (120, 200), region, settings),
                              whole[:, y0:y1, x0:x1]), region
    y0, y1, x0, x1 = detection.box  # the box holds every mask pixel
    assert np.array_equal(detection.box_mask_thw_f32, whole[:, y0:y1, x0:x1])
    outside = whole.copy()
    outside[:, y0:y1, x0:x1] = 0
    assert not outside.any() and whole[:, y0:y1, x0:x1].any()
    nothing = box_masks(np.zeros_like(prob_thw), (120, 200), settings)
    assert nothing.box is None and nothing.box_mask_thw_f32.shape == (7, 0, 0)


def test_sampling_one_frame_equals_sampling_it_among_others():
    rng = np.random.default_rng(1)
    frames_thwc_u8 = rng.integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    y = rng.uniform(-2, 42, 5000).astype(np.float32)  # > 4096 points: the folded map is padded
    x = rng.uniform(-2, 52, 5000).astype(np.float32)
    k = rng.integers(0, 3, 5000)
    mixed = sample_bilinear(frames_thwc_u8, k, y, x)
    for frame in range(3):
        alone = sample_bilinear(frames_thwc_u8, np.full(int((k == frame).sum()), frame), y[k == frame], x[k == frame])
        assert np.array_equal(mixed[k == frame], alone)
