"""Where is the burned-in text? Per-frame soft masks for one chunk, from the video alone.

1. Every frame is shrunk to the working size (short side ``detect_short_side``).
2. The segmenter (lite_net) runs on keyframes every ``detect_stride`` frames, seeing the
   colours plus how static each pixel is towards earlier and later frames.
3. Per keyframe, regions above ``low_threshold`` are kept when they hold enough confident
   seeds (> ``threshold``) that a neighbouring keyframe confirms (subtitles last seconds)
   and when they look like a caption line: wider than tall, confident through their body,
   strokes in both directions, not moving with the picture. Regions that fill their
   bounding rectangle (caption boxes) take the whole rectangle plus a rim; around the
   others, a (semi-transparent) caption box is looked for by its straight sides
   (lite_box) and taken whole when found.
4. Frames between keyframes take the union of the keyframes around them, widened by
   ``fade_reach`` keyframes (cues fade; their faint ends are drawn where the strong part is).
   A region is then dropped from each frame that shows the picture rather than the text
   there (``_shown_per_frame``): the frames between two cues reveal what the text hides, the
   only place a still shot shows it, and must not be masked.
5. The result is brought to full resolution inside its bounding box only, thresholded,
   dilated (anti-aliasing, outline and shadow fringes) and feathered by a few pixels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from clear_ray.removers.lite_features import STABILITY_OFFSETS, detector_input, stability_maps, working_size


@dataclass(frozen=True)
class DetectSettings:
    detect_short_side: int = 270
    detect_stride: int = 4
    threshold: float = 0.7
    low_threshold: float = 0.5
    persist_threshold: float = 0.35
    min_component_px: int = 20
    seed_fraction: float = 0.25  # share of a component that must be confidently text
    min_aspect: float = 1.5  # width / height of a caption line
    stroke_balance: tuple[float, float] = (0.45, 2.2)  # horizontal / vertical gradient energy
    fade_reach: int = 1  # keyframes a detection also covers before and after it (fades)
    absent_change: float = 6.0  # grey levels a text-free keyframe must differ from the text by to judge frames
    absent_alpha: float = 0.1  # text opacity (0 picture, 1 the keyframe's text) below which a frame lacks it
    box_fill: float = 0.8  # share of its bounding rectangle a region fills to count as a box
    box_rim_px: int = 2  # working pixels added around such a rectangle
    find_boxes: bool = True  # look for a caption box's straight sides around other regions (lite_box)
    still_picture: float = 3.0  # median grey change below which the picture counts as still
    still_text: float = 4.0  # grey change a static glyph core may show (codec noise)
    dilate_px: float = 0.0  # in working-resolution pixels (the segmenter already covers fringes)
    feather_px: int = 1  # full-resolution soft edge outside the dilated mask


@dataclass
class Detection:
    """Working-resolution probabilities plus the full-resolution soft mask inside its box."""

    prob_thw_f32: np.ndarray  # (T, h, w) per-frame text probability after persistence
    box: tuple[int, int, int, int] | None  # (y0, y1, x0, x1) full-res box holding every mask pixel
    # (T, y1 - y0, x1 - x0) soft mask in [0, 1] inside ``box`` (exactly 0 everywhere outside
    # it); (T, 0, 0) when nothing was found.
    box_mask_thw_f32: np.ndarray
    # Per frame, the caption-box rectangles (y0, y1, x0, x1; full resolution, approximate)
    # taken whole around a line, and the glyph-only probabilities (working resolution)
    # before the boxes were filled in: what lite_unblend needs to invert a box.
    boxes: list[list[tuple[int, int, int, int]]] = dataclasses.field(default_factory=list)
    glyph_prob_thw_f32: np.ndarray | None = None


def shrink_frames(frames_thwc_u8: np.ndarray, size_hw: tuple[int, int],
                  needed: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (T, h, w, 3) uint8, gray (T, h, w) float32) at the working size. With
    ``needed``, only those frames are shrunk (the others stay zero): the detector reads a
    fraction of the chunk's frames, and shrinking 720p frames is a large share of its time."""
    import cv2

    h, w = size_hw
    frames = frames_thwc_u8.shape[0]
    indices = range(frames) if needed is None else needed
    if (h, w) == frames_thwc_u8.shape[1:3]:
        small = frames_thwc_u8
    else:
        small = np.zeros((frames, h, w, 3), np.uint8)
        for t in indices:
            cv2.resize(frames_thwc_u8[t], (w, h), dst=small[t], interpolation=cv2.INTER_AREA)
    gray = np.zeros((frames, h, w), np.float32)
    for t in indices:
        gray[t] = cv2.cvtColor(small[t], cv2.COLOR_RGB2GRAY)
    return small, gray


def frames_read(frames: int, keys: list[int], offsets: tuple[int, ...] = STABILITY_OFFSETS) -> list[int]:
    """The frames the detector looks at: the keyframes and those their stability maps compare with."""
    needed = set(keys)
    for t in keys:
        needed.update(o for k in offsets for o in (t - k, t + k) if 0 <= o < frames)
    return sorted(needed)


def keyframe_indices(frames: int, stride: int) -> list[int]:
    keys = list(range(0, frames, stride))
    if keys[-1] != frames - 1:
        keys.append(frames - 1)
    return keys


def keyframe_probabilities(net, small_thwc_u8: np.ndarray, gray_thw_f32: np.ndarray,
                           keys: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K, h, w) float32 text probability at each keyframe, and the (K, h, w) low and
    high stability maps it saw."""
    import torch

    probs, lows, highs = [], [], []
    with torch.inference_mode():
        for t in keys:
            low, high = stability_maps(gray_thw_f32, t)
            x = torch.from_numpy(detector_input(small_thwc_u8[t], low, high))[None]
            probs.append(torch.sigmoid(net(x))[0, 0].numpy())
            lows.append(low)
            highs.append(high)
    return np.stack(probs).astype(np.float32), np.stack(lows), np.stack(highs)


def _moves_with_picture(labels: np.ndarray, count: int, seeds: np.ndarray, low_hw: np.ndarray,
                        high_hw: np.ndarray, settings: DetectSettings) -> np.ndarray:
    """Per component: does it change like the picture instead of staying put? Burned-in
    text keeps its pixels while the picture moves; a look-alike in the picture moves with
    it. Judged only when the picture visibly moves (else nothing can be told)."""
    moving = np.zeros(count, bool)
    picture_motion = float(np.median(high_hw))
    if picture_motion < settings.still_picture:
        return moving
    for label in np.unique(labels[seeds]):
        calm = low_hw[(labels == label) & seeds]
        # Most of a glyph's core is flat fill; a quarter of it must be as still as codec noise.
        if calm.size and float(np.percentile(calm, 25)) > max(settings.still_text, 0.5 * picture_motion):
            moving[label] = True
    return moving


def _line_shaped(labels: np.ndarray, count: int, stats: np.ndarray, seed_px: np.ndarray,
                 gray_hw: np.ndarray | None, settings: DetectSettings) -> np.ndarray:
    """Per component: does it look like a caption line rather than an edge in the picture?
    A line of glyphs is wider than tall, confident through most of its body (not just
    along one contour), and its strokes run both ways (vertical stems as well as
    horizontal bars), unlike a single bright rim or horizon."""
    import cv2

    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    width = stats[:, cv2.CC_STAT_WIDTH].astype(np.float64)
    height = stats[:, cv2.CC_STAT_HEIGHT].astype(np.float64)
    ok = (seed_px >= settings.seed_fraction * area) & (width >= settings.min_aspect * height)
    if gray_hw is not None:
        gx = np.abs(cv2.Sobel(gray_hw, cv2.CV_32F, 1, 0))
        gy = np.abs(cv2.Sobel(gray_hw, cv2.CV_32F, 0, 1))
        sum_x = np.bincount(labels.ravel(), weights=gx.ravel(), minlength=count)
        sum_y = np.bincount(labels.ravel(), weights=gy.ravel(), minlength=count)
        ratio = sum_x / np.maximum(sum_y, 1e-6)
        ok &= (ratio >= settings.stroke_balance[0]) & (ratio <= settings.stroke_balance[1])
    return ok


def _complete_boxes(kept_hw: np.ndarray, labels: np.ndarray, stats: np.ndarray, keep: np.ndarray,
                    settings: DetectSettings, gray_hw: np.ndarray | None = None) -> list[tuple[int, int, int, int]]:
    """A region that nearly fills its bounding rectangle is a caption box (or a dense
    line): its faint outer rim, where the box edge meets the picture, is where the
    segmenter is least sure, so the whole rectangle plus a rim is taken (in place).
    Other regions take the box rectangle lite_box finds around them, if any."""
    from clear_ray.removers.lite_box import find_boxes

    h, w = kept_hw.shape
    g = settings.box_rim_px
    rects = []
    for label in np.flatnonzero(keep):
        x, y, bw, bh, area = (int(v) for v in stats[label, :5])
        found = find_boxes(gray_hw, labels == label, x, y, bw, bh) if settings.find_boxes and gray_hw is not None else []
        if not found and area >= settings.box_fill * bw * bh and gray_hw is None:
            found = [(y, y + bh, x, x + bw)]
        # A dense region without a box's straight sides is a dense line of glyphs (CJK,
        # heavy outlines): its rectangle is not taken, the glyphs are.
        for y0, y1, x0, x1 in found:
            kept_hw[max(0, y0 - g):min(h, y1 + g), max(0, x0 - g):min(w, x1 + g)] = 1.0
            rects.append((y0, y1, x0, x1))
    return rects


def _persistent(probs_khw: np.ndarray, settings: DetectSettings, lows_khw: np.ndarray | None = None,
                highs_khw: np.ndarray | None = None, gray_khw: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, list[list[tuple[int, int, int, int]]]]:
    """Zero every keyframe detection that no neighbouring keyframe supports, and drop
    specks smaller than ``min_component_px``. Returns (kept probabilities with boxes
    filled, glyph-only probabilities, per keyframe the box rectangles filled)."""
    import cv2

    kept = np.zeros_like(probs_khw)
    glyphs = np.zeros_like(probs_khw)
    rects: list[list[tuple[int, int, int, int]]] = [[] for _ in range(probs_khw.shape[0])]
    grow = np.ones((3, 3), np.uint8)
    for k in range(probs_khw.shape[0]):
        neighbours = [probs_khw[j] for j in (k - 1, k + 1) if 0 <= j < probs_khw.shape[0]]
        if not neighbours:  # a one-keyframe chunk has nothing to confirm with
            support = probs_khw[k]
        else:
            support = cv2.dilate(np.max(neighbours, axis=0), grow)
        seeds = (probs_khw[k] > settings.threshold) & (support > settings.persist_threshold)
        if not seeds.any():
            continue
        # Hysteresis: keep each region above the low threshold that holds a confirmed seed
        # of at least min_component_px pixels (glyph fringes are less certain than cores).
        region = probs_khw[k] > settings.low_threshold
        count, labels, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
        seed_px = np.bincount(labels[seeds], minlength=count)
        keep = seed_px >= max(1, settings.min_component_px)
        keep[0] = False
        keep &= _line_shaped(labels, count, stats, seed_px, gray_khw[k] if gray_khw is not None else None, settings)
        if lows_khw is not None and highs_khw is not None:
            keep &= ~_moves_with_picture(labels, count, seeds, lows_khw[k], highs_khw[k], settings)
        kept[k] = np.where(keep[labels], probs_khw[k], 0.0)
        glyphs[k] = kept[k]
        rects[k] = _complete_boxes(kept[k], labels, stats, keep, settings,
                                   gray_khw[k] if gray_khw is not None else None)
    return kept, glyphs, rects


def _spans(keys: list[int], frames: int, reach: int) -> list[tuple[range, int, int]]:
    """(keyframe indices, first frame, frame after last) per stretch of frames that take
    their union over the same keyframes: the keyframes around them, widened by ``reach``
    keyframes on each side. Neighbouring stretches share their keyframe; the later wins."""
    count = len(keys)
    if count == 1:
        return [(range(0, 1), 0, frames)]
    return [(range(max(0, i - reach), min(count, i + 2 + reach)), keys[i], keys[i + 1] + 1) for i in range(count - 1)]


def _per_frame(kept_khw: np.ndarray, keys: list[int], frames: int, reach: int) -> np.ndarray:
    """Each frame takes the union of the keyframes around it, widened by ``reach``
    keyframes on each side: a cue fading in or out is faint at its ends, where the
    segmenter may miss it, but it is drawn at the place its full-strength frames show."""
    out = np.empty((frames,) + kept_khw.shape[1:], np.float32)
    for window, t0, t1 in _spans(keys, frames, reach):
        out[t0:t1] = kept_khw[window.start:window.stop].max(axis=0)
    return out


def _window(keys: list[int], frames: int, reach: int) -> list[range]:
    """Per frame, the keyframe indices ``_per_frame`` took its union over."""
    out: list[range] = [range(0)] * frames
    for window, t0, t1 in _spans(keys, frames, reach):
        out[t0:t1] = [window] * (t1 - t0)
    return out


def _shown_per_frame(kept_khw: np.ndarray, keys: list[int], frames_thwc_u8: np.ndarray, small_thwc_u8: np.ndarray,
                     gray_thw: np.ndarray, settings: DetectSettings) -> np.ndarray:
    """``_per_frame``'s union of the keyframes around each frame, without the keyframe
    regions the frame does not show. ``small_thwc_u8`` and ``gray_thw`` are
    ``shrink_frames``' output for ``frames_read`` (other frames are shrunk here as needed).

    A region one keyframe found may be gone from a frame whose union it is part of:
    between two cues, or before a cue begins. For each keyframe region that another
    keyframe of the window does not show (the text-free reference: of those, the one
    most unlike the region), the frame's grey levels on the region's
    confident core are fitted as ``free + alpha * (text - free)``: alpha near 1 is the
    text, near 0 the picture without it. The region stays where alpha is at least
    ``absent_alpha``: faint fade frames and keyframes the segmenter missed keep it, a
    colour change of the glyphs (karaoke) keeps it, and it is dropped only where the two
    references differ by more than ``absent_change`` grey levels (else nothing can be told)."""
    import cv2

    frames, h, w = gray_thw.shape
    out = np.zeros((frames, h, w), np.float32)
    windows = _window(keys, frames, settings.fade_reach)
    found_k = kept_khw > settings.low_threshold
    # Per keyframe, its regions as (box slices, region mask, core mask), all within the box.
    regions: list[list[tuple[tuple[slice, slice], np.ndarray, np.ndarray]]] = []
    for k in range(len(keys)):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(found_k[k].astype(np.uint8), connectivity=8)
        pieces = []
        for label in range(1, count):
            x, y, bw, bh = (int(v) for v in stats[label, :4])
            box = np.s_[y:y + bh, x:x + bw]
            region = labels[box] == label
            core = region & (kept_khw[k][box] > settings.threshold)
            pieces.append((box, region, core if core.any() else region))
        regions.append(pieces)
    shrunk = set(frames_read(frames, keys))

    def grey(t: int) -> np.ndarray:
        if t not in shrunk:  # frames the detector did not read are shrunk on demand
            if small_thwc_u8 is not frames_thwc_u8:  # (at working size already: they are the frames)
                cv2.resize(frames_thwc_u8[t], (w, h), dst=small_thwc_u8[t], interpolation=cv2.INTER_AREA)
            gray_thw[t] = cv2.cvtColor(small_thwc_u8[t], cv2.COLOR_RGB2GRAY)
            shrunk.add(t)
        return gray_thw[t]

    # The text-free reference of a region depends on its window only, not on the frame.
    references: dict[tuple[int, int, range], tuple[np.ndarray, np.ndarray] | None] = {}
    for t in range(frames):
        for k in windows[t]:
            for piece, (box, region, core) in enumerate(regions[k]):
                if keys[k] != t:
                    key = (k, piece, windows[t])
                    if key not in references:
                        references[key] = _text_free_reference(k, box, region, core, windows[t], keys, found_k, grey,
                                                               settings)
                    reference = references[key]
                    if reference is not None and not _shows_region(grey(t)[box][core], reference, settings):
                        continue
                np.maximum(out[t][box], np.where(region, kept_khw[k][box], np.float32(0)), out=out[t][box])
    return out


def _text_free_reference(k: int, box: tuple[slice, slice], region: np.ndarray, core: np.ndarray, window: range,
                         keys: list[int], found_k: np.ndarray, grey, settings: DetectSettings
                         ) -> tuple[np.ndarray, np.ndarray] | None:
    """(grey levels of the text-free reference on keyframe ``k``'s region core, text minus
    reference there), or None when no keyframe of the window tells (none lacks the region,
    or none differs from the text by more than ``absent_change``): the region is then kept."""
    free = [j for j in window if j != k and not found_k[j][box][region].any()]
    if not free:
        return None
    text = grey(keys[k])[box][core]
    contrasts = [float(np.abs(grey(keys[j])[box][core] - text).mean()) for j in free]
    best = int(np.argmax(contrasts))
    if contrasts[best] <= settings.absent_change:
        return None
    reference = grey(keys[free[best]])[box][core]
    return reference, text - reference


def _shows_region(core_grey: np.ndarray, reference: tuple[np.ndarray, np.ndarray], settings: DetectSettings) -> bool:
    """Does a frame whose grey levels on a region's core are ``core_grey`` show the region,
    judged against its text-free ``reference`` (see ``_shown_per_frame``)?"""
    free, span = reference
    alpha = float(np.dot(core_grey - free, span) / np.dot(span, span))
    return alpha >= settings.absent_alpha


def mask_box(prob_thw: np.ndarray, full_hw: tuple[int, int], settings: DetectSettings
             ) -> tuple[int, int, int, int] | None:
    """The full-resolution (y0, y1, x0, x1) box holding every pixel ``masks_in_region``
    can set, dilation and feather included; None when no pixel is above ``low_threshold``."""
    _, h, w = prob_thw.shape
    on_hw = (prob_thw > settings.low_threshold).any(axis=0)
    if not on_hw.any():
        return None
    full_h, full_w = full_hw
    sy, sx = full_h / h, full_w / w
    grow_px = settings.dilate_px * max(sy, sx) + settings.feather_px + 2
    ys, xs = np.nonzero(on_hw)
    return (max(0, int(np.floor(ys.min() * sy - grow_px))), min(full_h, int(np.ceil((ys.max() + 1) * sy + grow_px))),
            max(0, int(np.floor(xs.min() * sx - grow_px))), min(full_w, int(np.ceil((xs.max() + 1) * sx + grow_px))))


def masks_in_region(prob_thw: np.ndarray, full_hw: tuple[int, int], region: tuple[int, int, int, int],
                    settings: DetectSettings) -> np.ndarray:
    """The full-resolution soft masks of ``prob_thw`` inside ``region`` (y0, y1, x0, x1) only:
    upsampled, thresholded, dilated and feathered, as (T, y1 - y0, x1 - x0) float32. Only
    the region is ever made: a chunk of 720p frames is 300 MB as float32 masks, and fresh
    memory is slow to fault in."""
    import cv2

    frames, h, w = prob_thw.shape
    full_h, full_w = full_hw
    y0, y1, x0, x1 = region
    out = np.zeros((frames, y1 - y0, x1 - x0), np.float32)
    sy, sx = full_h / h, full_w / w
    # Working-pixel centres map to full-res centres; warpAffine upsamples only the region.
    to_small = np.array([[1 / sx, 0, (x0 + 0.5) / sx - 0.5], [0, 1 / sy, (y0 + 0.5) / sy - 0.5]], np.float64)
    size = 2 * int(np.ceil(settings.dilate_px * max(sy, sx))) + 1
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    feather = 2 * settings.feather_px + 1
    on_t = (prob_thw > settings.low_threshold).any(axis=(1, 2))
    previous_t = None
    for t in np.flatnonzero(on_t):
        # Frames between two keyframes share one probability map: upsample it once.
        if previous_t is not None and np.array_equal(prob_thw[t], prob_thw[previous_t]):
            out[t] = out[previous_t]
            continue
        previous_t = t
        up = cv2.warpAffine(prob_thw[t], to_small, (x1 - x0, y1 - y0),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
        core = cv2.dilate((up > settings.low_threshold).astype(np.uint8), disk).astype(np.float32)
        if settings.feather_px > 0:
            soft = cv2.blur(core, (feather, feather))
            np.maximum(core, np.clip(soft * 2.0, 0.0, 1.0), out=core)
        out[t] = core
    return out


def box_masks(prob_thw: np.ndarray, full_hw: tuple[int, int], settings: DetectSettings) -> Detection:
    """The detection of ``prob_thw``: its full-resolution masks, made in their box only."""
    box = mask_box(prob_thw, full_hw, settings)
    if box is None:
        return Detection(prob_thw, None, np.zeros((prob_thw.shape[0], 0, 0), np.float32))
    return Detection(prob_thw, box, masks_in_region(prob_thw, full_hw, box, settings))


def detect_text(net, frames_thwc_u8: np.ndarray, settings: DetectSettings) -> Detection:
    frames, full_h, full_w = frames_thwc_u8.shape[:3]
    size_hw = working_size(full_h, full_w, settings.detect_short_side)
    keys = keyframe_indices(frames, settings.detect_stride)
    small, gray = shrink_frames(frames_thwc_u8, size_hw, frames_read(frames, keys))
    probs, lows, highs = keyframe_probabilities(net, small, gray, keys)
    kept, glyphs, rects = _persistent(probs, settings, lows, highs, gray[keys])
    prob_thw = _shown_per_frame(kept, keys, frames_thwc_u8, small, gray, settings)
    detection = box_masks(prob_thw, (full_h, full_w), settings)
    if detection.box is not None and any(rects):
        glyph_prob_thw = _per_frame(glyphs, keys, frames, settings.fade_reach)
        detection.glyph_prob_thw_f32 = np.where(prob_thw > 0, glyph_prob_thw, np.float32(0))
        detection.boxes = _boxes_per_frame(rects, keys, frames, settings.fade_reach,
                                           (full_h / gray.shape[1], full_w / gray.shape[2]))
    return detection


def _boxes_per_frame(rects_k: list[list[tuple[int, int, int, int]]], keys: list[int], frames: int, reach: int,
                     scale_yx: tuple[float, float]) -> list[list[tuple[int, int, int, int]]]:
    """Each frame's candidate box rectangles at full resolution: those of the keyframes its
    mask came from (as ``_per_frame``), near-duplicates merged (lite_unblend snaps each to
    the exact sides, or finds the box absent in that frame)."""
    sy, sx = scale_yx
    full = [[(int(y0 * sy), int(np.ceil(y1 * sy)), int(x0 * sx), int(np.ceil(x1 * sx))) for y0, y1, x0, x1 in rs]
            for rs in rects_k]
    out: list[list[tuple[int, int, int, int]]] = [[] for _ in range(frames)]
    for window, t0, t1 in _spans(keys, frames, reach):
        merged: list[tuple[int, int, int, int]] = []
        for rect in (r for k in window for r in full[k]):
            if not any(_overlap(rect, other) > 0.7 for other in merged):
                merged.append(rect)
        for t in range(t0, t1):
            out[t] = merged
    return out


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (y0, y1, x0, x1) rectangles."""
    iy = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    ix = max(0, min(a[3], b[3]) - max(a[2], b[2]))
    inter = iy * ix
    union = (a[1] - a[0]) * (a[3] - a[2]) + (b[1] - b[0]) * (b[3] - b[2]) - inter
    return inter / union if union else 0.0
