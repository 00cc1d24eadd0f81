"""lite between and around cues: a frame is masked only where it shows the text.

Burned-in subtitles come and go; the frames between two cues are where a still shot shows
what the text hides. Masking them (as a union of neighbouring keyframes does) leaves
nothing but spatial inpainting for the whole cue."""

from __future__ import annotations

import numpy as np
import pytest

from clear_ray.removers.lite_detect import (
    DetectSettings,
    _per_frame,
    _shown_per_frame,
    frames_read,
    keyframe_indices,
    shrink_frames,
)

FRAMES, H, W = 9, 40, 80
TEXT = np.s_[15:25, 10:70]


def _background(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grain = rng.integers(60, 120, (H, W, 1), dtype=np.uint8)
    return np.repeat(np.repeat(grain, 3, axis=2)[None], FRAMES, axis=0)  # a still shot


def _with_text(frames: np.ndarray, opacity_per_frame: list[float]) -> np.ndarray:
    out = frames.astype(np.float32)
    for t, opacity in enumerate(opacity_per_frame):
        out[t][TEXT] = out[t][TEXT] * (1 - opacity) + 250.0 * opacity
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _kept(found_at: list[int]) -> tuple[np.ndarray, list[int]]:
    """Keyframe probabilities as the segmenter would leave them: the text rectangle at the
    keyframes listed, nothing elsewhere."""
    keys = keyframe_indices(FRAMES, 4)  # 0, 4, 8
    kept = np.zeros((len(keys), H, W), np.float32)
    for k in found_at:
        kept[k][TEXT] = 0.95
    return kept, keys


def _masked_frames(frames: np.ndarray, found_at: list[int]) -> list[bool]:
    settings = DetectSettings()
    kept, keys = _kept(found_at)
    union = _per_frame(kept, keys, FRAMES, settings.fade_reach)
    assert (union > settings.low_threshold)[:, TEXT[0], TEXT[1]].all()  # the union masks every frame
    small, gray = shrink_frames(frames, (H, W), frames_read(FRAMES, keys))  # as detect_text reads them
    prob = _shown_per_frame(kept, keys, frames, small, gray, settings)
    covered = (prob > settings.low_threshold)[:, TEXT[0], TEXT[1]].mean(axis=(1, 2))
    assert set(np.round(covered, 6)) <= {0.0, 1.0}  # a region is kept or dropped whole
    return [bool(c) for c in covered]


def test_frames_after_a_cue_ends_are_not_masked():
    frames = _with_text(_background(), [1, 1, 1, 1, 1, 0, 0, 0, 0])
    assert _masked_frames(frames, found_at=[0, 1]) == [True] * 5 + [False] * 4


def test_frames_before_a_cue_begins_are_not_masked():
    frames = _with_text(_background(), [0, 0, 0, 0, 0, 0, 1, 1, 1])
    assert _masked_frames(frames, found_at=[2]) == [False] * 6 + [True] * 3


def test_a_fading_cue_stays_masked_until_it_is_nearly_gone():
    # Fading out: 60 %, 30 %, 15 % opacity, then nothing. A faint frame that were left
    # unmasked would be the place the fill takes the "background" from, text included.
    frames = _with_text(_background(), [1, 1, 1, 1, 1, 0.6, 0.3, 0.15, 0])
    assert _masked_frames(frames, found_at=[0, 1]) == [True] * 8 + [False]


def test_a_keyframe_the_segmenter_missed_keeps_the_text_masked():
    frames = _with_text(_background(), [1] * FRAMES)
    assert _masked_frames(frames, found_at=[0, 2]) == [True] * FRAMES


def test_glyphs_changing_colour_stay_masked_until_the_cue_ends():
    # Karaoke: the glyphs turn from white to yellow during the cue, which then ends.
    frames = _with_text(_background(), [1, 1, 1, 1, 1, 1, 0, 0, 0])
    frames[3:6][:, TEXT[0], TEXT[1]] = (230, 200, 40)
    assert _masked_frames(frames, found_at=[0, 1]) == [True] * 6 + [False] * 3


@pytest.mark.parametrize("seed", [1, 2])
def test_a_moving_picture_between_cues_is_judged_like_a_still_one(seed):
    frames = _background(seed)
    rng = np.random.default_rng(seed)
    for t in range(FRAMES):  # the picture changes from frame to frame (motion, noise)
        frames[t] = np.clip(frames[t].astype(int) + rng.integers(-12, 13, (H, W, 1)), 0, 255)
    frames = _with_text(frames, [1, 1, 1, 1, 1, 0, 0, 0, 0])
    assert _masked_frames(frames, found_at=[0, 1]) == [True] * 5 + [False] * 4


def test_a_still_shot_is_filled_from_the_frames_between_two_cues():
    """Still camera, a cue, a pause, another cue at the same place: the pause is the only
    place the background behind both cues shows, and lite must take it from there."""
    import cv2

    from clear_ray.config import RemoverConfig
    from clear_ray.removers.lite import LiteRemover
    from tests.removers.test_lite import _burn, _composite, _panned_photo, _psnr

    frames = 41
    clean = _panned_photo("astronaut.png", frames=frames, step_px=0.0)  # a still shot
    burned, text_hw = _burn(clean)
    cue = np.zeros(frames, bool)
    cue[:13] = cue[29:] = True  # a pause over frames 13-28
    subtitled = np.where(cue[:, None, None, None], burned, clean)
    result = LiteRemover(RemoverConfig(backend="lite")).remove(subtitled).whole(subtitled)

    region = cv2.dilate(text_hw.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    masked_px = (result.mask_thw_f32 > 0)[:, region].sum(axis=1)
    # (The segmenter also marks a spot of the astronaut's suit in every frame: not a cue.)
    assert masked_px[~cue][2:-2].max() == 0, masked_px  # the pause, a few frames in from either cue
    assert (result.mask_thw_f32 > 0)[cue][:, text_hw].mean() > 0.95
    output = _composite(subtitled, result)
    lite_db = _psnr(output[cue], clean[cue], np.broadcast_to(region, clean[cue].shape[:3]))
    # The pause gives the true background back (~56 dB here). Masks that united the
    # keyframes around each frame also got it, from the middle of this pause, which they
    # left unmasked (the mask check above is what fails for them).
    assert lite_db > 40.0, lite_db
