"""Burn subtitle cues into clean frames: the subtitled video, the clean video re-encoded the
same way, and the exact per-frame text alpha with the binary mask derived from it.

Library API (also what training-pair generation uses):

- ``plan_cues``: timed cues of real text that fit the frame in a style.
- ``burn_in_frames``: in memory, clean frames + cues -> subtitled frames + alpha.
- ``write_burnin``: encode the subtitled and the clean frames with one encoder setting and
  store the alpha/mask, each file written atomically.
"""

from __future__ import annotations

import functools
import io
import os
import zipfile
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from clear_ray.synth.video_io import EncoderSettings, write_video
from clear_ray.synth.fonts import FontFace
from clear_ray.synth.render import (MAX_WIDTH_FRAC, LayoutError, TextLayer, composite_layer,
                                         render_cue, wrap_text)
from clear_ray.synth.styles import SubtitleStyle
from clear_ray.synth.texts import text_pool

# alpha >= MASK_THRESHOLD (of 255) is "text" in the binary mask: every pixel the text
# layer touches at all, anti-aliased fringe, outline, shadow and box included.
MASK_THRESHOLD = 1


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str
    lines: tuple[str, ...]

    def opacity(self, t_s: float, fade_in_s: float, fade_out_s: float) -> float:
        """0 outside [start, end); linear fade-in and fade-out ramps inside."""
        if not self.start_s <= t_s < self.end_s:
            return 0.0
        rise = (t_s - self.start_s) / fade_in_s if fade_in_s > 0 else 1.0
        fall = (self.end_s - t_s) / fade_out_s if fade_out_s > 0 else 1.0
        return float(min(1.0, rise, fall))


def plan_cues(rng: np.random.Generator, duration_s: float, language: str, split: str,
              style: SubtitleStyle, face: FontFace, frame_width: int, frame_height: int,
              pool: list[str] | None = None) -> list[Cue]:
    """Cues every 1-4 s (short gaps, sometimes none) of real ``language`` text from
    ``split``'s pool that ``face`` fully covers and that fit the frame."""
    covered = list(_covered_pool(face, language, split)) if pool is None else [t for t in pool if face.covers(t)]
    if not covered:
        raise LayoutError(f"{face.family} covers none of the {language} {split} texts")
    max_width = MAX_WIDTH_FRAC * frame_width
    font_px = style.font_px(frame_height)
    cues: list[Cue] = []
    t = float(rng.choice([0.0, rng.uniform(0.1, 0.6)]))
    while t < duration_s - 0.4:
        end = min(t + float(rng.uniform(1.0, 4.0)), duration_s)
        for _ in range(60):
            text = covered[int(rng.integers(len(covered)))]
            try:
                lines = wrap_text(text, face, font_px, max_width, style.max_lines, language)
                break
            except LayoutError:
                continue
        else:
            raise LayoutError(f"no {language} text fits {frame_width}x{frame_height} at {font_px}px")
        cues.append(Cue(round(t, 4), round(end, 4), text, tuple(lines)))
        t = end + float(rng.choice([0.0, rng.uniform(0.08, 0.6)]))
    return cues


@functools.lru_cache(maxsize=256)
def _covered_pool(face: FontFace, language: str, split: str) -> tuple[str, ...]:
    """``split``'s ``language`` lines that ``face`` draws without tofu (cached per worker)."""
    return tuple(text for text in text_pool(language, split) if face.covers(text))


def burn_in_frames(clean_thwc_u8: np.ndarray, fps: Fraction | float, cues: list[Cue],
                   style: SubtitleStyle, face: FontFace, language: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Composite ``cues`` over ``clean_thwc_u8``. Returns (subtitled (T,H,W,3) uint8,
    alpha (T,H,W) uint8): the alpha is exactly the one each frame was blended with."""
    t, h, w, _ = clean_thwc_u8.shape
    subtitled = clean_thwc_u8.copy()
    alpha_thw_u8 = np.zeros((t, h, w), np.uint8)
    layers: dict[int, TextLayer] = {}
    for index in range(t):
        time_s = index / float(fps)
        for cue_index, cue in enumerate(cues):
            opacity = cue.opacity(time_s, style.fade_in_s, style.fade_out_s)
            if opacity <= 0:
                continue
            if cue_index not in layers:
                layers[cue_index] = render_cue(list(cue.lines), style, face, w, h, language)
            composite_layer(subtitled[index], alpha_thw_u8[index], layers[cue_index], opacity)
    return subtitled, alpha_thw_u8


def mask_from_alpha(alpha_thw_u8: np.ndarray, threshold: int = MASK_THRESHOLD) -> np.ndarray:
    return alpha_thw_u8 >= threshold


@dataclass(frozen=True)
class BurnInFiles:
    subtitled: Path
    clean: Path
    alpha: Path
    frames: int
    text_frames: int  # frames with any text pixel


def write_burnin(clean_thwc_u8: np.ndarray, fps: Fraction | float, cues: list[Cue],
                 style: SubtitleStyle | None, face: FontFace | None, language: str | None,
                 subtitled_path: Path, clean_path: Path, alpha_path: Path,
                 encoder: EncoderSettings = EncoderSettings()) -> BurnInFiles:
    """Write the subtitled video, the clean video (same encoder settings) and the alpha.
    With no cues (``style`` None) the "subtitled" video is the clean one: a text-free clip."""
    if cues and style is not None and face is not None and language is not None:
        subtitled, alpha = burn_in_frames(clean_thwc_u8, fps, cues, style, face, language)
    else:
        subtitled, alpha = clean_thwc_u8, np.zeros(clean_thwc_u8.shape[:3], np.uint8)
    write_video(clean_path, clean_thwc_u8, fps, encoder)
    write_video(subtitled_path, subtitled, fps, encoder)
    save_alpha(alpha_path, alpha)
    text_frames = int(np.count_nonzero(alpha.reshape(alpha.shape[0], -1).max(axis=1)))
    return BurnInFiles(Path(subtitled_path), Path(clean_path), Path(alpha_path), int(alpha.shape[0]),
                       text_frames)


def save_alpha(path: str | Path, alpha_thw_u8: np.ndarray, threshold: int = MASK_THRESHOLD) -> Path:
    """Store the alpha (uint8) and the binary mask (bit-packed) in a compressed .npz whose
    bytes depend only on the arrays (fixed zip timestamps), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = mask_from_alpha(alpha_thw_u8, threshold)
    arrays = {"alpha_thw_u8": alpha_thw_u8, "mask_packed": np.packbits(mask, axis=-1),
              "mask_shape": np.asarray(mask.shape, np.int64), "mask_threshold": np.asarray(threshold)}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, buffer.getvalue())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def load_alpha(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(alpha (T,H,W) uint8, mask (T,H,W) bool) as written by ``save_alpha``."""
    with np.load(path, allow_pickle=False) as data:
        alpha = data["alpha_thw_u8"]
        shape = tuple(int(v) for v in data["mask_shape"])
        mask = np.unpackbits(data["mask_packed"], axis=-1, count=shape[-1]).astype(bool)
    return alpha, mask.reshape(shape)


def cue_to_json(cue: Cue) -> dict:
    return asdict(cue)
