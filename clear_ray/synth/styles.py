"""Subtitle styles as real burners draw them, sampled reproducibly.

A style is a point in a space of discrete choices (fill colour x decoration x size class)
plus continuous jitter (outline width, shadow offset, box opacity, margin, fades). The
discrete combinations are dealt to the three splits along diagonals,
``(fill + decoration + size) % 3``: each (fill, decoration) pair meets one size class per
split, so every colour, decoration and size class occurs in every split, but no
combination occurs in two, so ``train``, ``dev`` and ``test`` never share a style while
each still covers the whole range.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from clear_ray.synth.fonts import FontFace, faces_for

FILLS: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    # per channel (low, high) of the fill colour
    "white": ((232, 255), (232, 255), (232, 255)),
    "yellow": ((240, 255), (208, 240), (0, 70)),
}
DECORATIONS = ("outline", "shadow", "outline_shadow", "box")
# font size (pixel height of the em) as a fraction of the frame height
SIZE_CLASSES: dict[str, tuple[float, float]] = {
    "small": (0.042, 0.052), "medium": (0.052, 0.064), "large": (0.064, 0.080),
}
MIN_FONT_PX = 10  # below this no burner's text is legible; tiny test frames still get it
SPLIT_INDEX = {"train": 0, "dev": 1, "test": 2}


@dataclass(frozen=True)
class SubtitleStyle:
    key: str  # "fill/decoration/size": the discrete combination (split-disjoint)
    font_file: str
    font_family: str
    font_index: int
    size_frac: float  # em height / frame height
    fill_rgb: tuple[int, int, int]
    outline_rgb: tuple[int, int, int]
    outline_frac: float  # stroke width / em (0 = no outline)
    shadow_offset_frac: float  # shadow offset (down-right) / em (0 = no shadow)
    shadow_opacity: float
    shadow_blur_frac: float  # Gaussian blur radius / em
    box_opacity: float  # 0 = no box
    box_padding_frac: float  # box padding / em
    position: Literal["bottom", "top"]
    margin_frac: float  # distance of the text block from the frame edge / frame height
    line_spacing: float  # baseline-to-baseline distance / em
    max_lines: int  # 1 or 2
    fade_in_s: float
    fade_out_s: float

    def font_px(self, frame_height: int) -> int:
        return max(MIN_FONT_PX, int(round(self.size_frac * frame_height)))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SubtitleStyle":
        data = dict(data)
        for name in ("fill_rgb", "outline_rgb"):
            data[name] = tuple(data[name])
        return cls(**data)


def style_keys(split: str) -> list[str]:
    """The discrete style combinations that belong to ``split``."""
    parity = SPLIT_INDEX[split]
    return [f"{fill}/{deco}/{size}"
            for i, fill in enumerate(FILLS) for j, deco in enumerate(DECORATIONS)
            for k, size in enumerate(SIZE_CLASSES) if (i + j + k) % 3 == parity]


def sample_style(rng: np.random.Generator, language: str, split: str, face: FontFace | None = None,
                 key: str | None = None, position: Literal["bottom", "top"] | None = None) -> SubtitleStyle:
    """A random style for ``language`` from ``split``'s combinations and fonts. ``key`` and
    ``position`` may be fixed by the caller (a benchmark set deals them out evenly)."""
    keys = style_keys(split)
    if key is None:
        key = keys[int(rng.integers(len(keys)))]
    elif key not in keys:
        raise ValueError(f"style {key!r} does not belong to split {split!r}")
    fill_name, decoration, size_class = key.split("/")
    if face is None:
        faces = faces_for(language, split)
        face = faces[int(rng.integers(len(faces)))]

    fill = tuple(int(rng.integers(low, high + 1)) for low, high in FILLS[fill_name])
    outline_frac = shadow_offset = shadow_opacity = shadow_blur = box_opacity = 0.0
    if decoration in ("outline", "outline_shadow"):
        outline_frac = float(rng.uniform(0.05, 0.11) if decoration == "outline" else rng.uniform(0.04, 0.08))
    if decoration in ("shadow", "outline_shadow"):
        shadow_offset = float(rng.uniform(0.04, 0.09))
        shadow_opacity = float(rng.uniform(0.55, 0.9))
        shadow_blur = float(rng.choice([0.0, rng.uniform(0.01, 0.04)]))
    if decoration == "box":
        box_opacity = float(rng.uniform(0.45, 0.8))
    top = rng.random() < 0.15
    position = position or ("top" if top else "bottom")
    margin = float(rng.uniform(0.04, 0.08) if position == "top" else rng.uniform(0.04, 0.13))
    fades = rng.random() < 0.6
    low, high = SIZE_CLASSES[size_class]
    grey = int(rng.integers(0, 40))
    return SubtitleStyle(
        key=key, font_file=face.file_name, font_family=face.family, font_index=face.index,
        size_frac=float(rng.uniform(low, high)), fill_rgb=fill, outline_rgb=(grey, grey, grey),
        outline_frac=outline_frac, shadow_offset_frac=shadow_offset, shadow_opacity=shadow_opacity,
        shadow_blur_frac=shadow_blur, box_opacity=box_opacity,
        box_padding_frac=float(rng.uniform(0.15, 0.3)) if box_opacity else 0.0,
        position=position, margin_frac=margin, line_spacing=float(rng.uniform(1.15, 1.35)),
        max_lines=2 if rng.random() < 0.4 else 1,
        fade_in_s=float(rng.uniform(0.08, 0.3)) if fades else 0.0,
        fade_out_s=float(rng.uniform(0.08, 0.3)) if fades else 0.0,
    )
