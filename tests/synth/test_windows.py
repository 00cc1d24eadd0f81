"""One training window: real-subtitle timings, every language, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from clear_ray.synth.texts import LANGUAGES
from clear_ray.synth.windows import burn_window

FPS = 25


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(40, 200, (1, 120, 160, 3), dtype=np.uint8)
    return np.repeat(base, 33, axis=0)  # 33 frames = 1.32 s


def test_same_seed_same_pixels_other_seed_other_pixels(clean):
    first = burn_window(np.random.default_rng(7), clean, FPS, ("en", "zh"), "train", 0.0)
    again = burn_window(np.random.default_rng(7), clean, FPS, ("en", "zh"), "train", 0.0)
    other = burn_window(np.random.default_rng(8), clean, FPS, ("en", "zh"), "train", 0.0)
    assert np.array_equal(first.subtitled_thwc_u8, again.subtitled_thwc_u8)
    assert np.array_equal(first.alpha_thw_u8, again.alpha_thw_u8)
    assert not np.array_equal(first.alpha_thw_u8, other.alpha_thw_u8)


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_every_language_burns_in_with_exact_alpha(clean, language):
    burnt = burn_window(np.random.default_rng(3), clean[:9], FPS, (language,), "train", 0.0)
    for seed in range(4, 12):  # a window may fall into a gap between cues: draw another
        if burnt.language:
            break
        burnt = burn_window(np.random.default_rng(seed), clean[:9], FPS, (language,), "train", 0.0)
    assert burnt.language == language and burnt.alpha_thw_u8.any()
    changed = np.any(burnt.subtitled_thwc_u8 != clean[:9], axis=-1)
    assert not (changed & (burnt.alpha_thw_u8 == 0)).any()
    assert burnt.style.font_file in burnt.face.path


def test_timings_look_like_a_real_track(clean):
    """Across windows: some start mid-cue, some show a cue appearing, vanishing or changing
    inside the window, some are text-free, and styles cover top and bottom positions."""
    starts_mid_cue = changes_inside = text_free = 0
    positions, languages = set(), set()
    for seed in range(40):
        burnt = burn_window(np.random.default_rng(seed), clean, FPS, tuple(LANGUAGES), "train", 0.15)
        if not burnt.language:
            text_free += 1
            assert not burnt.alpha_thw_u8.any()
            continue
        languages.add(burnt.language)
        positions.add(burnt.style.position)
        starts_mid_cue += burnt.cues[0].start_s < 0
        per_frame = burnt.alpha_thw_u8.reshape(len(clean), -1)
        changes_inside += any(not np.array_equal(a, b) for a, b in zip(per_frame, per_frame[1:]))
    assert text_free >= 2 and starts_mid_cue >= 10 and changes_inside >= 5
    assert len(languages) >= 6 and positions == {"top", "bottom"}
