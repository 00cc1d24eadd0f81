"""The soft mask from output-vs-input difference, on synthetic frame pairs with known changes."""

from __future__ import annotations

import numpy as np
import pytest

from clear_ray.config import DifferenceMaskConfig
from clear_ray.removers.difference_mask import difference_mask, feather, temporal_fade

SETTINGS = DifferenceMaskConfig()  # threshold 24 (10 vs a reconstruction), box 5, dilate 3, feather 4,
#                                    fade over 2 frames, gaps of <= 4 frames closed


def _textured(frames=9, height=48, width=80, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(40, 200, (frames, height, width, 3), dtype=np.uint8)


def _with_box(frames: np.ndarray, rows: slice, cols: slice, value: int = 255, on=None) -> np.ndarray:
    out = frames.copy()
    for t in range(len(out)) if on is None else on:
        out[t, rows, cols] = value
    return out


def test_identical_frames_give_an_exactly_zero_mask():
    frames = _textured()
    mask = difference_mask(frames, frames.copy(), SETTINGS)
    assert mask.dtype == np.float32 and mask.shape == frames.shape[:3]
    assert not mask.any()


def _vae_like_drift(frames: np.ndarray) -> np.ndarray:
    """Structured drift, the kind a VAE round trip makes: fine texture blurred away, a
    colour shift of 30 levels in the dark half, moving with the frame content."""
    import cv2

    drifted = np.stack([cv2.GaussianBlur(frame, (7, 7), 2.0) for frame in frames]).astype(np.int16)
    dark = frames.mean(axis=-1, keepdims=True) < 120
    drifted += np.where(dark, np.array([30, -20, 25], np.int16), 0).astype(np.int16)
    return np.clip(drifted, 0, 255).astype(np.uint8)


def test_structured_drift_opens_the_input_mask_but_not_the_reconstruction_mask():
    source = _textured()
    output = _vae_like_drift(source)  # the model removed nothing, only drifted
    # Against the input the drift is change (this is what the reconstruction fixes) ...
    assert difference_mask(source, output, SETTINGS).mean() > 0.2
    # ... against the model's own reconstruction of the input it cancels exactly.
    assert not difference_mask(source, output, SETTINGS, reconstruction_thwc_u8=_vae_like_drift(source)).any()


def test_low_contrast_text_under_drift_is_found_only_against_the_reconstruction():
    background = _textured()
    source = background.copy()
    source[:, 30:38, 16:64] = np.clip(source[:, 30:38, 16:64].astype(int) + 18, 0, 255)  # faint text
    output = _vae_like_drift(background)  # text removed, plus drift everywhere
    reconstruction = _vae_like_drift(source)  # drift, text kept
    mask = difference_mask(source, output, SETTINGS, reconstruction_thwc_u8=reconstruction)
    assert (mask[:, 31:37, 18:62] == 1.0).all()  # the text
    assert (mask[:, :18] == 0).all() and (mask[:, :, :4] == 0).all()  # the drift away from it
    assert mask.mean() < 0.3


def test_a_reconstruction_of_another_shape_is_rejected():
    frames = _textured()
    with pytest.raises(ValueError, match="reconstruction"):
        difference_mask(frames, frames, SETTINGS, reconstruction_thwc_u8=frames[:, :10])


def test_a_changed_region_is_one_inside_feathered_at_its_edge_and_zero_far_away():
    source = _with_box(_textured(), slice(30, 40), slice(20, 60), value=255)  # "burned-in text"
    output = _textured()  # the remover restored the background there
    mask = difference_mask(source, output, SETTINGS)
    assert (mask >= 0).all() and (mask <= 1).all()
    assert (mask[:, 30:40, 20:60] == 1.0).all()
    # change spreads <= 2 px (box), + 3 (dilate) + 4 (feather): nothing 10 px away
    assert (mask[:, :20, :] == 0).all() and (mask[:, :, :10] == 0).all() and (mask[:, :, 70:] == 0).all()
    edge = mask[4, 35, 60:72]  # walking right, away from the region
    assert edge[0] == 1.0 and edge[-1] == 0.0
    assert (np.diff(edge) <= 0).all() and ((edge > 0) & (edge < 1)).any()


def test_the_mask_fades_over_neighbouring_frames_and_stops_exactly():
    # A change in frame 4 only: frames 2..6 get decreasing weights, the rest stays 0.
    source = _textured()
    output = _with_box(source, slice(10, 20), slice(10, 30), value=0, on=[4])
    mask = difference_mask(source, output, SETTINGS)
    peaks = mask[:, 15, 20]
    np.testing.assert_allclose(peaks, [0, 0, 1 / 3, 2 / 3, 1, 2 / 3, 1 / 3, 0, 0], atol=1e-6)


def test_a_one_frame_miss_inside_a_cue_is_closed_not_faded():
    source = _textured()
    output = _with_box(source, slice(10, 20), slice(10, 30), value=0, on=[0, 1, 2, 3, 5, 6, 7, 8])
    mask = difference_mask(source, output, SETTINGS)
    assert (mask[:, 10:20, 10:30] == 1.0).all()  # no frame of the cue shows text, not even a third of it


def test_gaps_up_to_temporal_gap_are_closed_and_longer_ones_fade():
    source = _textured(frames=17)
    four_missed = [t for t in range(17) if not 4 <= t < 8]
    mask = difference_mask(source, _with_box(source, slice(10, 20), slice(10, 30), value=0, on=four_missed),
                           SETTINGS)  # temporal_gap 4
    assert (mask[:, 15, 20] == 1.0).all()
    five_missed = [t for t in range(17) if not 4 <= t < 9]
    mask = difference_mask(source, _with_box(source, slice(10, 20), slice(10, 30), value=0, on=five_missed),
                           SETTINGS)
    np.testing.assert_allclose(mask[3:10, 15, 20], [1, 2 / 3, 1 / 3, 0, 1 / 3, 2 / 3, 1], atol=1e-6)


def test_a_cue_that_starts_inside_the_window_still_fades_in():
    source = _textured()
    output = _with_box(source, slice(10, 20), slice(10, 30), value=0, on=[5, 6, 7, 8])
    mask = difference_mask(source, output, SETTINGS)
    np.testing.assert_allclose(mask[:, 15, 20], [0, 0, 0, 1 / 3, 2 / 3, 1, 1, 1, 1], atol=1e-6)


def test_feather_and_fade_have_exact_cores_and_supports():
    changed = np.zeros((32, 32), bool)
    changed[16, 16] = True
    soft = feather(changed, dilate_px=2, feather_px=3)
    assert soft[16, 16] == 1.0 and soft[16, 18] == 1.0
    assert (soft[:, :10] == 0).all() and (soft[:10] == 0).all()
    assert soft.max() == 1.0 and 0 < soft[16, 20] < 1
    assert np.array_equal(feather(changed, 0, 0), changed.astype(np.float32))
    assert np.array_equal(temporal_fade(soft[None], 3), soft[None])


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="must both be"):
        difference_mask(_textured(frames=5), _textured(frames=9), SETTINGS)


def test_settings_validate():
    with pytest.raises(ValueError):
        DifferenceMaskConfig(smoothing_px=4)
    with pytest.raises(ValueError):
        DifferenceMaskConfig(threshold=0)


def test_the_shared_compositor_keeps_every_unchanged_pixel_bit_exact():
    from clear_ray.chunking import Chunk
    from clear_ray.removers.base import RemovalResult
    from clear_ray.staging import stage_result
    from clear_ray.stitch import composite_frame

    source = _with_box(_textured(), slice(30, 40), slice(20, 60), value=255)
    removed = source.copy()
    removed[:, 30:40, 20:60] = 90  # the remover replaced the "text" only
    mask = difference_mask(source, removed, SETTINGS)
    staged = stage_result(Chunk(index=0, start=0, stop=len(source), pad_before=0, pad_after=0),
                          RemovalResult(frames_thwc_u8=removed, mask_thw_f32=mask))
    out = np.stack([composite_frame(src, [(1.0, frame)]) for src, frame in zip(source, staged.frames)])
    untouched = mask == 0
    assert untouched.mean() > 0.5
    assert np.array_equal(out[untouched], source[untouched])
    assert np.array_equal(out[:, 30:40, 20:60], removed[:, 30:40, 20:60])
