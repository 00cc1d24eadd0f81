"""Caption boxes: the whole rectangle behind a detected caption line.

A caption drawn on a (semi-transparent) box darkens or lightens every background pixel of
the rectangle by the same rule, so the rectangle's four sides are straight brightness
steps that run the full length of each side, with the same sign (inside minus outside)
on all four. The segmenter is sure of the glyphs but not of the box's faint outer part;
unmasked box pixels would then be copied into the fill as darkened background. Here,
around each kept line region, the four sides are looked for near its bounds; only when
all four are found with the same sign, and padding the text about evenly, is the
rectangle returned.

Text-free footage never reaches this code (it only looks around regions the detector
already kept), and a picture edge near a caption rarely forms a closed, same-signed
rectangle around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BoxSettings:
    reach: float = 1.0  # how far outside the region a side may lie, x region height
    inset: float = 0.34  # how far inside the region a side may lie, x region height (or width/4)
    min_step: float = 5.0  # grey levels a side's step must reach in a pixel to count
    consistency: float = 0.6  # share of a side's pixels whose step has the side's sign and size
    against: float = 0.15  # share of a side's pixels that may step the other way
    side_pad_ratio: float = 2.5  # left/right padding at most this x the top/bottom one (+3 px)
    span: int = 2  # pixel distance the step is taken over (edges blur when downscaled)


def _best_step(profile_nl: np.ndarray, candidates: np.ndarray, settings: BoxSettings,
               sign: float) -> int | None:
    """Among candidate lines (rows of ``profile_nl``: inside minus outside steps along
    one candidate side), the one whose step of the given sign is strongest where
    consistent. Where the picture is nearly black (or white) a dark (light) box shows no
    step at all, so a side needs a clear step on ``consistency`` of its pixels and few
    against it."""
    if candidates.size == 0 or profile_nl.shape[1] < 3:
        return None
    signed = profile_nl * sign
    share = (signed >= settings.min_step).mean(axis=1)
    against = (signed <= -settings.min_step).mean(axis=1)
    ok = (share >= settings.consistency) & (against <= settings.against)
    if not ok.any():
        return None
    score = np.where(ok, share * np.median(signed, axis=1), -np.inf)
    return int(candidates[int(np.argmax(score))])


def _row_side(gray_hw: np.ndarray, rows: np.ndarray, cx0: int, cx1: int, outward: int,
              settings: BoxSettings, sign: float) -> int | None:
    """A top (outward -1) or bottom (+1) side among ``rows``: row r inside, r + outward*span outside."""
    h = gray_hw.shape[0]
    rows = rows[(rows + outward * settings.span >= 0) & (rows + outward * settings.span < h) & (rows >= 0)]
    if rows.size == 0:
        return None
    steps = gray_hw[rows, cx0:cx1] - gray_hw[rows + outward * settings.span, cx0:cx1]
    return _best_step(steps, rows, settings, sign)


def _column_side(gray_hw: np.ndarray, cols: np.ndarray, ry0: int, ry1: int, outward: int,
                 settings: BoxSettings, sign: float) -> int | None:
    """A left (outward -1) or right (+1) side among ``cols``, judged over rows ry0..ry1."""
    w = gray_hw.shape[1]
    cols = cols[(cols + outward * settings.span >= 0) & (cols + outward * settings.span < w) & (cols >= 0)]
    if cols.size == 0 or ry1 - ry0 < 3:
        return None
    steps = (gray_hw[ry0:ry1, cols] - gray_hw[ry0:ry1, cols + outward * settings.span]).T
    return _best_step(steps, cols, settings, sign)


def _one_box(gray_hw: np.ndarray, x: int, y: int, bw: int, bh: int, settings: BoxSettings, sign: float,
             open_top: int | None = None, open_bottom: int | None = None) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of one box darker (sign -1) or lighter (+1) than the picture around
    the rectangle (x, y, bw, bh); a side given as ``open_*`` is taken as is (where it
    touches another line's box)."""
    s = settings.span
    reach = max(3, int(round(settings.reach * bh)))
    inset_y = max(1, int(round(settings.inset * bh)))
    inset_x = max(1, min(bw // 4, inset_y))
    # Columns inside the region (glyph-free padding rows above/below still cross them).
    cx0, cx1 = x + bw // 10, x + bw - bw // 10
    if cx1 - cx0 < 3:
        return None
    if open_top is None:
        top = _row_side(gray_hw, np.arange(y - reach, y + inset_y), cx0, cx1, -1, settings, sign)
        if top is None:
            return None
        y0 = top
    else:
        y0 = open_top
    if open_bottom is None:
        bottom = _row_side(gray_hw, np.arange(y + bh - inset_y, y + bh + reach), cx0, cx1, +1, settings, sign)
        if bottom is None:
            return None
        y1 = bottom + 1
    else:
        y1 = open_bottom
    # Side columns are judged over the box's inner rows (padding rows included).
    ry0, ry1 = y0 + (s if open_top is None else 0), y1 - (s if open_bottom is None else 0)
    left = _column_side(gray_hw, np.arange(x - reach, x + inset_x), ry0, ry1, -1, settings, sign)
    right = _column_side(gray_hw, np.arange(x + bw - inset_x, x + bw + reach), ry0, ry1, +1, settings, sign)
    if left is None or right is None:
        return None
    x0, x1 = left, right + 1
    # A box pads its text about evenly; a side far beyond the text is a picture edge.
    pad_y = max(y - y0 if open_top is None else 0, y1 - (y + bh) if open_bottom is None else 0, 0)
    if max(x - x0, x1 - (x + bw)) > settings.side_pad_ratio * pad_y + 3:
        return None
    return y0, y1, x0, x1


def _widen(box: tuple[int, int, int, int], shape_hw: tuple[int, int], s: int) -> tuple[int, int, int, int]:
    # The step is taken over ``span`` pixels: the side lies somewhere within them.
    y0, y1, x0, x1 = box
    return max(0, y0 - (s - 1)), min(shape_hw[0], y1 + (s - 1)), max(0, x0 - (s - 1)), min(shape_hw[1], x1 + s - 1)


def find_boxes(gray_hw: np.ndarray, region_hw: np.ndarray, x: int, y: int, bw: int, bh: int,
               settings: BoxSettings = BoxSettings()) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) rectangles of the caption box(es) behind the region ``region_hw``
    (bool, bounding rectangle (x, y, bw, bh)) in ``gray_hw`` (float32); empty when none.
    One box around the whole region, or else two stacked boxes (a two-line caption whose
    lines have their own boxes, touching at the line gap)."""
    for sign in (-1.0, 1.0):
        whole = _one_box(gray_hw, x, y, bw, bh, settings, sign)
        if whole is not None:
            return [_widen(whole, gray_hw.shape, settings.span)]
    if bh < 6:
        return []
    middle = y + bh // 2
    for sign in (-1.0, 1.0):
        parts = []
        for r0, r1 in ((y, middle), (middle, y + bh)):
            cols = np.flatnonzero(region_hw[r0:r1, x:x + bw].any(axis=0))
            if cols.size < 3:
                return []
            top_open, bottom_open = (None, middle) if r0 == y else (middle, None)
            part = _one_box(gray_hw, x + int(cols[0]), r0, int(cols[-1] - cols[0] + 1), r1 - r0, settings, sign,
                            top_open, bottom_open)
            if part is None:
                break
            parts.append(part)
        if len(parts) == 2:
            return [_widen(p, gray_hw.shape, settings.span) for p in parts]
    return []
