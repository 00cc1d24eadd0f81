"""Metrics against known values and an independent implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clear_ray.evaluation import metrics
from clear_ray.footage import skimage_photo


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(skimage_photo("astronaut.png")).convert("RGB"))


def shifted_sequence(photo: np.ndarray, step_px: int, frames: int = 6) -> np.ndarray:
    """A camera panning right over a real photo by exactly ``step_px`` per frame."""
    return np.stack([photo[100:220, 60 + step_px * t:60 + step_px * t + 160] for t in range(frames)])


def test_identical_inputs_give_the_psnr_cap_and_ssim_one(photo):
    frame = photo[:120, :160]
    assert metrics.psnr(frame, frame) == metrics.PSNR_CAP_DB == 100.0
    assert metrics.ssim(frame, frame) == pytest.approx(1.0, abs=1e-6)


def test_psnr_of_a_known_error():
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a + np.uint8(5)
    assert metrics.psnr(a, b) == pytest.approx(20 * math.log10(255 / 5))
    mask = np.zeros((8, 8), bool)
    mask[:2] = True
    c = a.copy()
    c[:2] += 10  # error only inside the mask
    assert metrics.psnr(a, c, mask) == pytest.approx(20 * math.log10(255 / 10))
    assert metrics.psnr(a, c, ~mask) == 100.0
    assert math.isnan(metrics.psnr(a, c, np.zeros((8, 8), bool)))


def test_ssim_matches_scikit_image(photo):
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = photo[:120, :160]
    b = np.clip(a + rng.normal(0, 12, a.shape), 0, 255).astype(np.uint8)
    expected = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255, channel_axis=-1)
    # scikit-image averages the map without the 5-pixel border its window cannot fill.
    assert metrics.ssim_map(a, b)[5:-5, 5:-5].mean() == pytest.approx(expected, abs=1e-5)
    assert 0.3 < expected < 0.95


def test_region_scores_separate_text_from_rest(photo):
    reference = shifted_sequence(photo, 1, frames=3)
    output = reference.copy()
    mask = np.zeros(reference.shape[:3], bool)
    mask[:, 90:100, 40:120] = True
    output[mask] = 255  # damage only the "text" area
    scores = metrics.region_scores(output, reference, mask, dilation_px=2)
    assert scores["psnr_rest"] == 100.0 and scores["ssim_rest"] < 1.0  # SSIM windows see the edge
    assert scores["psnr_text"] < 15 < scores["psnr_full"] < scores["psnr_rest"]
    empty = metrics.region_scores(reference, reference, np.zeros_like(mask))
    assert math.isnan(empty["psnr_text"]) and empty["psnr_full"] == 100.0


def test_a_rigid_shift_has_near_zero_warping_error_and_the_true_flow(photo):
    sequence = shifted_sequence(photo, 2)
    pairs = metrics.flow_pairs(sequence)
    # The window pans right, so content moves 2 px left: what frame t shows at x,
    # frame t-1 showed at x + 2 (flow t -> t-1 = +2 px horizontally).
    flow = np.concatenate([p.backward_hw2[p.valid_hw] for p in pairs])
    assert np.median(flow[..., 0]) == pytest.approx(2.0, abs=0.1)
    assert np.median(flow[..., 1]) == pytest.approx(0.0, abs=0.1)
    assert metrics.warping_error(sequence, pairs) < 1e-5
    # Without motion compensation the same frames differ a lot: the flow is doing the work.
    assert np.mean(((sequence[1:].astype(float) - sequence[:-1]) / 255) ** 2) > 100 * metrics.warping_error(sequence)


def test_flicker_noise_raises_warping_error_by_about_two_sigma_squared(photo):
    sequence = shifted_sequence(photo, 2)
    rng = np.random.default_rng(1)
    sigma = 4.0
    noisy = np.clip(sequence + rng.normal(0, sigma, sequence.shape), 0, 255).astype(np.uint8)
    expected = 2 * (sigma / 255) ** 2  # difference of two independent noises
    # bilinear warping at sub-pixel flow averages some noise away: a little below 2 s^2
    assert 0.6 * expected < metrics.warping_error(noisy) < 1.2 * expected
    scores = metrics.temporal_scores(noisy, sequence)
    assert scores["twe"] == pytest.approx(metrics.warping_error(noisy) * 1e3, rel=1e-6)
    assert scores["tc"] > 10  # far less stable than the clean video
    same = metrics.temporal_scores(sequence, sequence)
    assert same["tc"] == 1.0 and same["flow_mean"] == 0.0 and same["flow_var"] == 0.0


def test_mask_precision_recall():
    true = np.zeros((2, 20, 20), bool)
    true[:, 5:10, 5:15] = True  # 50 px per frame
    predicted = np.zeros((2, 20, 20), np.float32)
    predicted[:, 5:10, 5:10] = 0.9  # half of the text
    predicted[:, 15:17, 0:5] = 0.8  # 10 false pixels per frame
    predicted[:, 0:2, 0:2] = 0.2  # below the threshold: not predicted
    scores = metrics.mask_precision_recall(predicted, true)
    assert scores["precision"] == pytest.approx(25 / 35)
    assert scores["recall"] == pytest.approx(0.5)
    assert scores["false_positive_rate"] == pytest.approx(10 / 350)
    u8 = metrics.mask_precision_recall((predicted * 255).astype(np.uint8), true)
    assert u8 == pytest.approx(scores)
    # On a text-free clip only the false-positive rate is defined.
    none = metrics.mask_precision_recall(np.zeros((1, 4, 4), np.float32), np.zeros((1, 4, 4), bool))
    assert math.isnan(none["precision"]) and math.isnan(none["recall"]) and none["false_positive_rate"] == 0.0
    # A one-pixel offset is forgiven with a one-pixel tolerance.
    shifted = np.roll(true, 1, axis=2).astype(np.float32)
    assert metrics.mask_precision_recall(shifted, true, tolerance_px=1)["precision"] == 1.0
    assert metrics.mask_precision_recall(shifted, true)["precision"] < 1.0
