"""Burn subtitles into one window of clean video the way a real subtitle track would.

A window (81 frames is ~3 s) is a slice of a longer programme: the subtitle track is
planned over a stretch that starts up to a few seconds *before* the window, so cues are
already on screen at frame 0, change, fade and vanish inside the window, and gaps between
cues leave some frames clean. A share of windows gets no text at all (scenes without
dialogue), which teaches a remover to leave clean video alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from clear_ray.synth.burnin import Cue, burn_in_frames, plan_cues
from clear_ray.synth.fonts import FontFace, faces_for
from clear_ray.synth.render import LayoutError
from clear_ray.synth.styles import SubtitleStyle, sample_style

MAX_LEAD_S = 4.0  # the track starts up to this long before the window
LAYOUT_TRIES = 20


@dataclass
class BurntWindow:
    subtitled_thwc_u8: np.ndarray
    alpha_thw_u8: np.ndarray
    language: str  # "" when text-free
    style: SubtitleStyle | None
    face: FontFace | None
    cues: list[Cue]  # times relative to the window's first frame (may start before 0)


def burn_window(rng: np.random.Generator, clean_thwc_u8: np.ndarray, fps: Fraction | float,
                languages: tuple[str, ...], split: str, text_free_fraction: float = 0.1) -> BurntWindow:
    """Subtitled frames and exact alpha for one clean window; every choice comes from ``rng``."""
    t, h, w, _ = clean_thwc_u8.shape
    duration_s = t / float(fps)
    if rng.random() < text_free_fraction:
        return _text_free(clean_thwc_u8)
    problems = []
    for _ in range(LAYOUT_TRIES):  # a style too big for a tiny frame, or a face lacking glyphs: draw again
        language = languages[int(rng.integers(len(languages)))]
        faces = faces_for(language, split)
        face = faces[int(rng.integers(len(faces)))]
        style = sample_style(rng, language, split, face)
        lead_s = float(rng.uniform(0.0, MAX_LEAD_S))
        try:
            track = plan_cues(rng, lead_s + duration_s, language, split, style, face, w, h)
        except LayoutError as error:
            problems.append(str(error))
            continue
        cues = [dataclasses.replace(c, start_s=round(c.start_s - lead_s, 4), end_s=round(c.end_s - lead_s, 4))
                for c in track]
        cues = [c for c in cues if c.end_s > 0 and c.start_s < duration_s]
        if not cues:  # the window fell into a gap of the track: a clean stretch of a programme
            return _text_free(clean_thwc_u8)
        subtitled, alpha = burn_in_frames(clean_thwc_u8, fps, cues, style, face, language)
        return BurntWindow(subtitled, alpha, language, style, face, cues)
    raise LayoutError(f"no language/style of {','.join(languages)} fits {w}x{h}: {problems[-1]}")


def _text_free(clean_thwc_u8: np.ndarray) -> BurntWindow:
    return BurntWindow(clean_thwc_u8.copy(), np.zeros(clean_thwc_u8.shape[:3], np.uint8), "", None, None, [])
