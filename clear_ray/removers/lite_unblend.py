"""Un-blend a semi-transparent caption box instead of inpainting it.

A burner draws a box as ``out = src * (1 - a) + a * colour`` over the whole rectangle, so
every background pixel under the box is still there, scaled and offset. Inpainting the
rectangle throws that away (and a box is far larger than its glyphs); inverting the blend
gets it back: ``src = (out - a * colour) / (1 - a)``. Only the glyphs (and their outline
and shadow) inside the box, and a thin ring along the box's sides, are left to the fill.

Estimating ``a`` and ``colour`` from one frame: pixel pairs straddling the box's sides
(``gap_px`` + j inside, ``gap_px`` + j outside, mirrored) see about the same background,
one of them through the box. Regressing inside on outside gives slope ``1 - a`` and
intercept ``a * colour`` per channel. Ordinary least squares would be biased towards a
flat slope (neighbouring background pixels are not equal); the background on the two sides
is statistically alike, so the ratio of robust spreads (a reduced-major-axis fit) is used
for the slope, and medians for the intercept. The estimate is refused (None: the box is
inpainted, as before) when the picture along the sides is too flat to tell, when the
opacity is outside ``[min_opacity, max_opacity]`` (an opaque box hides the background:
inverting it would only amplify codec noise), or when the un-blended inside band does
not match the outside band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UnblendSettings:
    search_px: int = 4  # how far (full-res px) from the detected side the exact side is looked for
    gap_px: int = 1  # pixels either side of a side left out of the fit (anti-aliasing, 4:2:0 chroma)
    band_px: int = 3  # depth of the compared bands on each side of a side
    min_step: float = 4.0  # median grey step a side needs to count as a box side
    min_opacity: float = 0.15
    max_opacity: float = 0.85  # above this, 1/(1-a) amplifies codec noise more than the fill errs
    min_spread: float = 6.0  # grey std of the outside band below which the slope cannot be told
    residual_ratio: float = 1.3  # un-blended inside vs outside may differ this x more than outside vs outside
    residual_slack: float = 2.0  # grey levels added to that bound (8-bit rounding x 1/(1-a))
    min_pairs: int = 60
    overflow: float = 24.0  # grey levels an un-blended value may leave [0, 255] by before it counts as a glyph


@dataclass(frozen=True)
class BoxBlend:
    rect: tuple[int, int, int, int]  # (y0, y1, x0, x1): the box's exact pixels, full resolution
    opacity: float
    colour_rgb: tuple[float, float, float]

    def unblend(self, region_hwc: np.ndarray) -> np.ndarray:
        """The background under the box, float32, for pixels of ``region_hwc`` (box pixels)."""
        a = self.opacity
        colour = np.asarray(self.colour_rgb, np.float32)
        return (region_hwc.astype(np.float32) - a * colour) / (1.0 - a)


def _gray(frame_hwc_u8: np.ndarray) -> np.ndarray:
    # Per pixel, not a matrix product: BLAS rounds by the array's layout, and a side that
    # sits on a threshold must be judged alike in a whole frame and in a crop of it.
    rgb = frame_hwc_u8.astype(np.float32)
    return rgb[..., 0] * np.float32(0.299) + rgb[..., 1] * np.float32(0.587) + rgb[..., 2] * np.float32(0.114)


def _refine_side(gray_hw: np.ndarray, at: int, lo: int, hi: int, axis: int, outward: int,
                 settings: UnblendSettings) -> tuple[int, float] | None:
    """The exact position of one side near ``at`` (first inside row/column) and its median
    inside-minus-outside step, judged over ``lo..hi`` along the side; None without a clear,
    consistent step."""
    size = gray_hw.shape[axis]
    best = None
    for p in range(at - settings.search_px, at + settings.search_px + 1):
        out_p = p + outward  # the adjacent outside line
        if not (0 <= p < size and 0 <= out_p < size) or hi - lo < 3:
            continue
        if axis == 0:
            step = gray_hw[p, lo:hi] - gray_hw[out_p, lo:hi]
        else:
            step = gray_hw[lo:hi, p] - gray_hw[lo:hi, out_p]
        median = float(np.median(step))
        consistent = float((np.sign(step) == np.sign(median)).mean())
        if abs(median) >= settings.min_step and consistent >= 0.7 and (best is None or abs(median) > abs(best[1])):
            best = (p, median)
    return best


def refine_rect(gray_hw: np.ndarray, rect: tuple[int, int, int, int], settings: UnblendSettings
                ) -> tuple[tuple[int, int, int, int], list[str]] | None:
    """(exact rect, the sides found with one sign of step) near ``rect``; None when fewer
    than two sides agree (not a box in this frame)."""
    y0, y1, x0, x1 = rect
    h, w = gray_hw.shape
    cx0, cx1 = x0 + (x1 - x0) // 8, x1 - (x1 - x0) // 8
    cy0, cy1 = y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4
    sides = {"top": _refine_side(gray_hw, y0, cx0, cx1, 0, -1, settings),
             "bottom": _refine_side(gray_hw, y1 - 1, cx0, cx1, 0, +1, settings),
             "left": _refine_side(gray_hw, x0, cy0, cy1, 1, -1, settings),
             "right": _refine_side(gray_hw, x1 - 1, cy0, cy1, 1, +1, settings)}
    found = {k: v for k, v in sides.items() if v is not None}
    if not found:
        return None
    sign = np.sign(np.median([v[1] for v in found.values()]))
    found = {k: v for k, v in found.items() if np.sign(v[1]) == sign}
    if len(found) < 2:
        return None
    ny0 = found["top"][0] if "top" in found else y0
    ny1 = found["bottom"][0] + 1 if "bottom" in found else y1
    nx0 = found["left"][0] if "left" in found else x0
    nx1 = found["right"][0] + 1 if "right" in found else x1
    if ny1 - ny0 < 4 or nx1 - nx0 < 4 or ny0 < 0 or nx0 < 0 or ny1 > h or nx1 > w:
        return None
    return (ny0, ny1, nx0, nx1), sorted(found)


def _pairs(frame_hwc_u8: np.ndarray, rect: tuple[int, int, int, int], sides: list[str], keep_hw: np.ndarray,
           settings: UnblendSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inside, outside, farther) (N, 3) float32 pixel triples across the found sides: an
    inside pixel, its mirror outside at distance D, and the outside pixel D farther out,
    where none of them is marked off in ``keep_hw`` (False under glyphs)."""
    y0, y1, x0, x1 = rect
    h, w = frame_hwc_u8.shape[:2]
    found: list[list[np.ndarray]] = [[], [], []]
    g, b = settings.gap_px, settings.band_px
    for side in sides:
        for j in range(b):
            if side in ("top", "bottom"):
                ri, ro = (y0 + g + j, y0 - 1 - g - j) if side == "top" else (y1 - 1 - g - j, y1 + g + j)
                rf = 2 * ro - ri
                if not (0 <= min(ro, rf) and max(ro, rf) < h and y0 <= ri < y1):
                    continue
                cols = np.arange(x0 + g + b, x1 - g - b)
                at = [(np.full(cols.size, r), cols) for r in (ri, ro, rf)]
            else:
                ci, co = (x0 + g + j, x0 - 1 - g - j) if side == "left" else (x1 - 1 - g - j, x1 + g + j)
                cf = 2 * co - ci
                if not (0 <= min(co, cf) and max(co, cf) < w and x0 <= ci < x1):
                    continue
                rows = np.arange(y0 + g + b, y1 - g - b)
                at = [(rows, np.full(rows.size, c)) for c in (ci, co, cf)]
            ok = np.logical_and.reduce([keep_hw[r, c] for r, c in at])
            for k, (r, c) in enumerate(at):
                found[k].append(frame_hwc_u8[r[ok], c[ok]].astype(np.float32))
    inside, outside, farther = (np.concatenate(v) if v else np.zeros((0, 3), np.float32) for v in found)
    return inside, outside, farther


def _fit(inside: np.ndarray, outside: np.ndarray, farther: np.ndarray, rect: tuple[int, int, int, int],
         settings: UnblendSettings) -> BoxBlend | None:
    if inside.shape[0] < settings.min_pairs:
        return None
    # Slope (1 - a), shared by the channels. Regressing inside on outside alone would come
    # out flat by the correlation of background pixels D apart; the outside pixel D farther
    # out shows that correlation (regressed on the same outside pixels), and dividing by it
    # takes it out.
    out_c = outside - outside.mean(axis=0)
    if float(np.sqrt((out_c ** 2).mean())) < settings.min_spread:
        return None
    var_out = float((out_c ** 2).sum())
    along = float(((inside - inside.mean(axis=0)) * out_c).sum()) / var_out
    correlation = float(((farther - farther.mean(axis=0)) * out_c).sum()) / var_out
    if correlation < 0.3:  # the picture changes too fast across the side to compare
        return None
    slope = along / correlation
    opacity = 1.0 - slope
    if not settings.min_opacity <= opacity <= settings.max_opacity:
        return None
    intercept = np.median(inside, axis=0) - slope * np.median(outside, axis=0)
    colour = np.clip(intercept / opacity, 0.0, 255.0)
    return BoxBlend(rect, float(opacity), tuple(float(c) for c in colour))  # type: ignore[arg-type]


def _fits(blend: BoxBlend, inside: np.ndarray, outside: np.ndarray, farther: np.ndarray,
          settings: UnblendSettings) -> bool:
    """The un-blended inside differs from its mirror no more than two outside pixels the
    same distance apart do (plus rounding): else the model does not fit this frame."""
    residual = float(np.median(np.abs(blend.unblend(inside) - outside)))
    natural = float(np.median(np.abs(farther - outside)))
    return residual <= settings.residual_ratio * natural + settings.residual_slack


def estimate_blend(frame_hwc_u8: np.ndarray, rect: tuple[int, int, int, int], glyph_hw: np.ndarray | None = None,
                   settings: UnblendSettings = UnblendSettings()) -> BoxBlend | None:
    """The box near ``rect`` (y0, y1, x0, x1; full resolution) in one frame, or None when
    it should be inpainted instead (see the module doc). ``glyph_hw`` (bool) marks pixels
    that belong to the caption's glyphs, never used for the fit."""
    found = estimate_blends(frame_hwc_u8[None], rect, None if glyph_hw is None else glyph_hw[None], settings)
    return found.get(0)


def estimate_blends(frames_thwc_u8: np.ndarray, rect: tuple[int, int, int, int], glyph_thw: np.ndarray | None,
                    settings: UnblendSettings = UnblendSettings(), max_fit_frames: int = 12) -> dict[int, BoxBlend]:
    """{frame index: blend} for the frames of a stack that show one box near ``rect``. The
    frames whose sides snap to the same exact rectangle are fitted together (a moving
    picture then averages out what one frame's texture biases); each frame must then fit
    the common blend on its own (frames fading in or out do not, and are inpainted)."""
    per_frame = {}
    for t, frame in enumerate(frames_thwc_u8):
        refined = refine_rect(_gray(frame), rect, settings)
        if refined is not None:
            per_frame[t] = refined
    if not per_frame:
        return {}
    rects = [exact for exact, _ in per_frame.values()]
    # The most frequent; of equals, the earliest (not a set's order, which follows the
    # coordinates' hashes: a crop of the frames must choose as the whole frames do).
    common = max(rects, key=rects.count)
    members = [t for t, (exact, _) in per_frame.items() if exact == common]
    triples = {}
    for t in members:
        keep = np.ones(frames_thwc_u8.shape[1:3], bool) if glyph_thw is None else ~glyph_thw[t]
        triples[t] = _pairs(frames_thwc_u8[t], common, per_frame[t][1], keep, settings)
    chosen = members[:: max(1, -(-len(members) // max_fit_frames))]
    blend = _fit(*(np.concatenate([triples[t][k] for t in chosen]) for k in range(3)), common, settings)
    if blend is None:
        return {}
    return {t: blend for t in members if triples[t][0].shape[0] and _fits(blend, *triples[t], settings)}


def unblend_frame(frame_hwc_u8: np.ndarray, blend: BoxBlend, settings: UnblendSettings = UnblendSettings()
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(the frame with the box's pixels un-blended (uint8), bool (H, W) of the pixels
    recovered: the box minus a ring of ``gap_px`` + 1 along its sides, where the side's
    anti-aliasing and chroma smear mix box and picture)."""
    y0, y1, x0, x1 = blend.rect
    out = frame_hwc_u8.copy()
    out[y0:y1, x0:x1] = np.clip(blend.unblend(frame_hwc_u8[y0:y1, x0:x1]) + 0.5, 0, 255).astype(np.uint8)
    recovered = np.zeros(frame_hwc_u8.shape[:2], bool)
    r = settings.gap_px + 1
    recovered[y0 + r:y1 - r, x0 + r:x1 - r] = True
    return out, recovered


def unblend_boxes(frames_thwc_u8: np.ndarray, boxes_per_frame: list[list[tuple[int, int, int, int]]],
                  glyph_thw: np.ndarray, glyph_grow_px: int, settings: UnblendSettings = UnblendSettings()
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(frames with every box that could be inverted un-blended, bool (T, H, W) of the pixels
    recovered so: the boxes minus their side rings and minus the glyphs). Frames or boxes
    that cannot be inverted are left as they are (their pixels stay to be filled).

    The glyphs inside an inverted box are the segmenter's (``glyph_thw``), unless it took
    the whole box as text, plus every pixel whose un-blended value leaves the 8-bit range
    (text drawn over the box at full strength inverts far outside it), each grown by
    ``glyph_grow_px`` (outlines, shadows and anti-aliasing hug the glyphs)."""
    import cv2

    out = frames_thwc_u8
    recovered = np.zeros(frames_thwc_u8.shape[:3], bool)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * glyph_grow_px + 1,) * 2)
    # Each distinct candidate rectangle is fitted over the frames that list it.
    candidates: dict[tuple[int, int, int, int], list[int]] = {}
    for t, rects in enumerate(boxes_per_frame):
        for rect in rects:
            candidates.setdefault(rect, []).append(t)
    for rect, frames in candidates.items():
        index = np.asarray(frames)
        y0, y1, x0, x1 = rect
        covered = glyph_thw[index, y0:y1, x0:x1].mean() > 0.6 if y1 > y0 and x1 > x0 else True
        fit_glyphs = None if covered else glyph_thw[index]
        for i, blend in estimate_blends(frames_thwc_u8[index], rect, fit_glyphs, settings).items():
            t = int(index[i])
            by0, by1, bx0, bx1 = blend.rect
            if recovered[t, by0:by1, bx0:bx1].any():
                continue  # another candidate already inverted this box in this frame
            if out is frames_thwc_u8:
                out = frames_thwc_u8.copy()
            inverted = blend.unblend(frames_thwc_u8[t, by0:by1, bx0:bx1])
            outside = ((inverted > 255.0 + settings.overflow) | (inverted < -settings.overflow)).any(axis=-1)
            glyph = cv2.dilate(outside.astype(np.uint8), disk) > 0
            if not covered:
                glyph |= glyph_thw[t, by0:by1, bx0:bx1]
            out[t], got = unblend_frame(out[t], blend, settings)
            got[by0:by1, bx0:bx1] &= ~glyph
            recovered[t] |= got
    return out, recovered
