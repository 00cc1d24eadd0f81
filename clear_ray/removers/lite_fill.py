"""Fill the text holes of one chunk: from other frames where the background shows, then
spatially for what no frame shows.

1. Work in one box around every hole of the chunk (plus a margin for motion context).
2. Optical flow between consecutive frames (OpenCV DIS at reduced size) on grey frames
   whose holes were smoothed over first, so the static text does not pin the flow to zero;
   flow inside the holes is then replaced by a smooth fill from the flow around them.
3. Two propagation passes (from the past, from the future) track, for every hole pixel,
   WHERE in WHICH frame its background was last seen (coordinates, not colours, are
   carried along, so the picture is resampled once and does not blur over many frames).
4. A hole pixel takes the temporally nearest sighting, blending both directions by inverse
   frame distance when both exist.
5. Pixels never seen take the previous output frame's fill along the flow (static shots
   then reuse one inpainting for the whole chunk: no flicker), and the rest is inpainted
   spatially (Telea).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FillSettings:
    flow_short_side: int = 270
    margin_frac: float = 0.06  # context around the holes, as a fraction of the frame's long side
    inpaint_radius: int = 3
    max_reach: int = 1000  # frames; sightings farther away count as unseen (flow errors add up)
    probe_px: int = 3  # width of the known ring around each hole used to check the borrowed fill
    ring_error: float = 5.0  # mean grey error on that ring above which the borrowed fill is distrusted
    carry_motion_px: float = 1.0  # unseen pixels moving less than this per frame reuse the previous fill
    flow_refine_iters: int = 0  # DIS variational refinement (the "fast" preset has 5): most of the flow cost, no PSNR gain on dev
    carry_ring_change: float = 2.5  # ...when the known ring around their hole changed less than this (grey levels)
    disagreement: float = 24.0  # past and future sightings further apart than this (grey levels) are both distrusted


def push_pull(values_hwc: np.ndarray, weight_hw: np.ndarray) -> np.ndarray:
    """Fill where ``weight_hw`` is 0 with a smooth interpolation of the weighted values
    (a normalised-convolution pyramid): exact where weight is 1."""
    import cv2

    levels = [(values_hwc * weight_hw[..., None], weight_hw)]
    while min(levels[-1][1].shape) > 2 and (levels[-1][1] <= 1e-3).any():
        v, w = levels[-1]
        size = (max(1, v.shape[1] // 2), max(1, v.shape[0] // 2))
        levels.append((cv2.resize(v, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1),
                       cv2.resize(w, size, interpolation=cv2.INTER_AREA)))
    v, w = levels[-1]
    filled = v / np.maximum(w, 1e-6)[..., None]
    for v, w in reversed(levels[:-1]):
        up = cv2.resize(filled, (v.shape[1], v.shape[0]), interpolation=cv2.INTER_LINEAR).reshape(v.shape)
        alpha = np.clip(w * 4.0, 0.0, 1.0)[..., None]
        filled = alpha * (v / np.maximum(w, 1e-6)[..., None]) + (1.0 - alpha) * up
    return filled


def sample_bilinear(frames_thwc: np.ndarray, k: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(N, C) float32 values of frames[k] at sub-pixel (y, x) (clamped to the frame)."""
    import cv2

    out = np.empty((y.size, frames_thwc.shape[-1]), np.float32)
    if y.size == 0:
        return out
    h, w = frames_thwc.shape[1:3]
    map_x = np.clip(x, 0, w - 1).astype(np.float32)
    map_y = np.clip(y, 0, h - 1).astype(np.float32)
    if k[0] == k.min() == k.max():  # one source frame (always so for flow lookups): no grouping
        out[:] = _remap_points(frames_thwc[int(k[0])], map_x, map_y)
        return out
    order = np.argsort(k, kind="stable")
    bounds = np.flatnonzero(np.diff(k[order])) + 1
    for group in np.split(order, bounds):
        out[group] = _remap_points(frames_thwc[int(k[group[0]])], map_x[group], map_y[group])
    return out


def _remap_points(frame_hwc: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """(N, C) values of one frame at the (N,) float32 points (already clamped)."""
    import cv2

    # cv2.remap on a small map samples only the points we need; the map is folded
    # into rows of 4096 because remap's sizes must stay below 32767.
    n = map_x.size
    cols = min(n, 4096)
    rows = -(-n // cols)
    if rows * cols == n:
        gx, gy = map_x, map_y
    else:
        gx = np.zeros(rows * cols, np.float32)
        gy = np.zeros(rows * cols, np.float32)
        gx[:n], gy[:n] = map_x, map_y
    got = cv2.remap(frame_hwc, gx.reshape(rows, cols), gy.reshape(rows, cols),
                    interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return got.reshape(rows * cols, -1)[:n]


FLOW_GUARD_PX = 6


class _Flows:
    """Consecutive-frame flows of the crop at reduced size, holes completed."""

    def __init__(self, crop_thwc_u8: np.ndarray, hole_thw: np.ndarray, scale: float, refine_iters: int = 0):
        import cv2

        frames, hc, wc = hole_thw.shape
        self.scale = scale
        self.size = (max(8, int(round(wc * scale))), max(8, int(round(hc * scale))))
        sw, sh = self.size
        self.sx, self.sy = sw / wc, sh / hc
        # Flows are only read at frames with a hole (propagation and carrying start from
        # hole pixels), so only those frames and their neighbours are prepared.
        has_hole = hole_thw.any(axis=(1, 2))
        wanted = has_hole.copy()
        wanted[1:] |= has_hole[:-1]
        wanted[:-1] |= has_hole[1:]
        grey: list[np.ndarray | None] = [None] * frames
        invalid: list[np.ndarray | None] = [None] * frames
        grow = np.ones((5, 5), np.uint8)
        # DIS matches 8-px patches and then smooths: flow this close to a hole still feels
        # the (static) hole, so it is re-estimated from farther out.
        grow_flow = np.ones((2 * FLOW_GUARD_PX + 1,) * 2, np.uint8)
        for t in np.flatnonzero(wanted):
            g = cv2.cvtColor(cv2.resize(crop_thwc_u8[t], self.size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
            h = cv2.resize(hole_thw[t].astype(np.float32), self.size, interpolation=cv2.INTER_AREA) > 0
            if h.any():
                g = push_pull(g.astype(np.float32)[..., None], (cv2.dilate(h.astype(np.uint8), grow) == 0).astype(np.float32))[..., 0]
                g = np.clip(g + 0.5, 0, 255).astype(np.uint8)
                h = cv2.dilate(h.astype(np.uint8), grow_flow) > 0
            grey[t] = g
            invalid[t] = h
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        dis.setFinestScale(0)  # flow at full (reduced-frame) resolution: sub-pixel accuracy matters for PSNR
        dis.setVariationalRefinementIterations(refine_iters)
        self.to_prev: list[np.ndarray | None] = [None] * frames
        self.to_next: list[np.ndarray | None] = [None] * frames
        for t in np.flatnonzero(has_hole):
            if t > 0:
                self.to_prev[t] = self._complete(dis.calc(grey[t], grey[t - 1], None), invalid[t])
            if t < frames - 1:
                self.to_next[t] = self._complete(dis.calc(grey[t], grey[t + 1], None), invalid[t])

    @staticmethod
    def _complete(flow_hw2: np.ndarray, invalid_hw: np.ndarray) -> np.ndarray:
        """Replace the flow over ``invalid`` by an affine motion fitted (robustly) to the
        flow around it: camera pans and zooms are affine, and a fit from the whole
        surround is not dragged towards zero by the static text the way a local
        interpolation from the hole's edge is."""
        if not invalid_hw.any():
            return flow_hw2
        ys, xs = np.nonzero(~invalid_hw)
        if ys.size < 16:
            return np.zeros_like(flow_hw2)
        if ys.size > 4000:  # a regular subsample is plenty for 6 parameters
            step = ys.size // 4000 + 1
            ys, xs = ys[::step], xs[::step]
        design = np.stack([xs, ys, np.ones_like(xs)], axis=1).astype(np.float64)
        target = flow_hw2[ys, xs].astype(np.float64)
        weight = np.ones(ys.size)
        for _ in range(3):  # iteratively reweighted least squares (Cauchy-like)
            sw = np.sqrt(weight)[:, None]
            params, *_ = np.linalg.lstsq(design * sw, target * sw, rcond=None)
            residual = np.linalg.norm(design @ params - target, axis=1)
            weight = 1.0 / (1.0 + (residual / 0.5) ** 2)
        hy, hx = np.nonzero(invalid_hw)
        out = flow_hw2.copy()
        out[hy, hx] = (np.stack([hx, hy, np.ones_like(hx)], axis=1) @ params).astype(np.float32)
        return out

    def at(self, flow_hw2: np.ndarray, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flow at crop pixels (y, x), in crop pixels: (dy, dx)."""
        fy = (y + 0.5) * self.sy - 0.5
        fx = (x + 0.5) * self.sx - 0.5
        d = sample_bilinear(flow_hw2[None], np.zeros(y.shape, np.int64), fy, fx)
        return d[:, 1] / self.sy, d[:, 0] / self.sx


def _propagate(hole_thw: np.ndarray, flows: _Flows, forward: bool,
               hole_px: list[tuple[np.ndarray, np.ndarray]] | None = None):
    """Per frame, for its hole pixels: (source frame or -1, source y, source x).
    ``hole_px``: np.nonzero of each frame's hole, when the caller has it already."""
    frames, hc, wc = hole_thw.shape
    order = range(frames) if forward else range(frames - 1, -1, -1)
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [None] * frames  # type: ignore[list-item]
    prev = None  # (frame, k, sy, sx) of the previous frame's hole pixels
    # The previous frame's hole pixels' indices (-1 elsewhere). One map serves every frame:
    # only the entries of the frame before are reset (a fresh full-size map per frame costs more).
    index_map = np.full((hc, wc), -1, np.int32)
    last_ys = last_xs = np.zeros(0, np.int64)
    for t in order:
        ys, xs = np.nonzero(hole_thw[t]) if hole_px is None else hole_px[t]
        k = np.full(ys.shape, -1, np.int32)
        sy, sx = np.zeros(ys.shape, np.float32), np.zeros(ys.shape, np.float32)
        flow = flows.to_prev[t] if forward else flows.to_next[t]
        if prev is not None and ys.size and flow is not None:
            prev_t, pk, py, px = prev
            dy, dx = flows.at(flow, ys.astype(np.float32), xs.astype(np.float32))
            qy, qx = ys + dy, xs + dx
            qi, qj = np.rint(qy).astype(np.int64), np.rint(qx).astype(np.int64)
            inside = np.flatnonzero((qi >= 0) & (qi < hc) & (qj >= 0) & (qj < wc))
            at = index_map[qi[inside], qj[inside]]
            clear = at < 0  # landed where the previous frame shows its own background
            direct, chained = inside[clear], inside[~clear]
            k[direct], sy[direct], sx[direct] = prev_t, qy[direct], qx[direct]
            # Landed in the previous frame's hole: inherit its sighting, plus the sub-pixel offset.
            src = at[~clear]
            k[chained] = pk[src]
            sy[chained] = py[src] + (qy[chained] - qi[chained])
            sx[chained] = px[src] + (qx[chained] - qj[chained])
        out[t] = (k, sy, sx)
        index_map[last_ys, last_xs] = -1
        index_map[ys, xs] = np.arange(ys.size, dtype=np.int32)
        last_ys, last_xs = ys, xs
        prev = (t, k, sy, sx)
    return out


def _ring_distrust(frame_hwc_u8: np.ndarray, probe_hw: np.ndarray, hole_hw: np.ndarray, py: np.ndarray,
                   px: np.ndarray, colour: np.ndarray, seen: np.ndarray, threshold: float) -> np.ndarray:
    """For each probe pixel: is its probe component's prediction of the known ring (probe
    minus hole) off by more than ``threshold`` grey levels on average? A flow chain that
    went astray inside the hole also mispredicts the ring around it."""
    import cv2

    count, labels = cv2.connectedComponents(probe_hw.astype(np.uint8), connectivity=8)
    lab = labels[py, px]
    on_ring = ~hole_hw[py, px] & seen
    error = np.abs(colour[on_ring] - frame_hwc_u8[py[on_ring], px[on_ring]]).mean(axis=1)
    sums = np.bincount(lab[on_ring], weights=error, minlength=count)
    n = np.bincount(lab[on_ring], minlength=count)
    bad = sums > threshold * np.maximum(n, 1)
    return bad[lab]


def _ring_still(crop_thwc_u8: np.ndarray, probe_thw: np.ndarray, hole_thw: np.ndarray, t: int, ys: np.ndarray,
                xs: np.ndarray, threshold: float) -> np.ndarray:
    """For hole pixels (ys, xs) of frame ``t``: is the known ring of their probe component
    (visible in frames t-1 and t) unchanged, within ``threshold`` grey levels on average?"""
    import cv2

    count, labels = cv2.connectedComponents(probe_thw[t].astype(np.uint8), connectivity=8)
    ring = probe_thw[t] & ~hole_thw[t] & ~hole_thw[t - 1]
    ry, rx = np.nonzero(ring)
    change = np.abs(crop_thwc_u8[t, ry, rx].astype(np.float32) - crop_thwc_u8[t - 1, ry, rx]).mean(axis=1)
    lab = labels[ry, rx]
    sums = np.bincount(lab, weights=change, minlength=count)
    n = np.bincount(lab, minlength=count)
    still = (n > 0) & (sums <= threshold * np.maximum(n, 1))
    return still[labels[ys, xs]]


def _sample_sightings(crop_thwc_u8: np.ndarray, use: np.ndarray, k: np.ndarray, y: np.ndarray,
                      x: np.ndarray) -> np.ndarray:
    """(N, 3) float32 colours of the sightings with ``use``, 0 for the others (their weight is
    0, so what they hold never reaches the output: they are not sampled)."""
    out = np.zeros((k.size, 3), np.float32)
    if use.all():
        out[:] = sample_bilinear(crop_thwc_u8, k, y, x)
    elif use.any():
        out[use] = sample_bilinear(crop_thwc_u8, k[use], y[use], x[use])
    return out


def fill_margin(settings: FillSettings, frame_hw: tuple[int, int]) -> int:
    """Pixels of context ``fill_holes`` takes around the holes in a frame of this size."""
    return int(round(settings.margin_frac * max(frame_hw))) + 8


def fill_holes(frames_thwc_u8: np.ndarray, hole_thw: np.ndarray, settings: FillSettings,
               box: tuple[int, int, int, int] | None = None, frame_hw: tuple[int, int] | None = None) -> np.ndarray:
    """A copy of the frames with every hole pixel replaced (others untouched). ``box``
    (y0, y1, x0, x1), when given, must hold every hole pixel: only it is searched.
    ``frame_hw``: the whole frame's size when the frames are a crop of it (the context
    margin and the flow's scale follow the whole frame; the crop must hold the holes plus
    that margin, or the frame's edge)."""
    import cv2

    out = frames_thwc_u8.copy()
    frames, full_h, full_w = hole_thw.shape
    frame_h, frame_w = frame_hw or (full_h, full_w)
    by0, by1, bx0, bx1 = box if box is not None else (0, full_h, 0, full_w)
    # 1. The box around all holes, with context for the flow.
    ys, xs = np.nonzero(hole_thw[:, by0:by1, bx0:bx1].any(axis=0))
    if ys.size == 0:
        return out
    ys, xs = ys + by0, xs + bx0
    margin = fill_margin(settings, (frame_h, frame_w))
    y0, y1 = max(0, ys.min() - margin), min(full_h, ys.max() + 1 + margin)
    x0, x1 = max(0, xs.min() - margin), min(full_w, xs.max() + 1 + margin)
    crop = frames_thwc_u8[:, y0:y1, x0:x1]
    hole = hole_thw[:, y0:y1, x0:x1]
    result = out[:, y0:y1, x0:x1]

    # 2. Flows; 3. both propagation passes, over the holes grown by a probe ring: the ring's
    # true pixels are known, so how well they are predicted tells whether to trust the rest.
    scale = min(1.0, settings.flow_short_side / float(min(frame_h, frame_w)))
    flows = _Flows(crop, hole, scale, settings.flow_refine_iters)
    ring = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * settings.probe_px + 1,) * 2)
    probe = np.stack([cv2.dilate(h.astype(np.uint8), ring) > 0 if h.any() else h for h in hole])
    probe_px = [np.nonzero(p) for p in probe]
    from_past = _propagate(probe, flows, forward=True, hole_px=probe_px)
    from_future = _propagate(probe, flows, forward=False, hole_px=probe_px)

    # 4. Nearest sighting(s); 5. what no frame shows.
    for t in range(frames):
        py, px = probe_px[t]
        if py.size == 0:
            continue
        kp, syp, sxp = from_past[t]
        kf, syf, sxf = from_future[t]
        reach = settings.max_reach
        wp = np.where((kp >= 0) & (t - kp <= reach), 1.0 / np.maximum(1, t - kp), 0.0).astype(np.float32)
        wf = np.where((kf >= 0) & (kf - t <= reach), 1.0 / np.maximum(1, kf - t), 0.0).astype(np.float32)
        total = wp + wf
        seen = total > 0
        past = _sample_sightings(crop, wp > 0, kp, syp, sxp)
        future = _sample_sightings(crop, wf > 0, kf, syf, sxf)
        colour = past * wp[:, None] + future * wf[:, None]
        colour[seen] /= total[seen, None]
        # Two sightings that disagree mean at least one flow chain went astray.
        both = (wp > 0) & (wf > 0)
        seen &= ~(both & (np.abs(past - future).mean(axis=1) > settings.disagreement))
        seen &= ~_ring_distrust(crop[t], probe[t], hole[t], py, px, colour, seen, settings.ring_error)
        in_hole = hole[t][py, px]
        hy, hx, colour, seen = py[in_hole], px[in_hole], colour[in_hole], seen[in_hole]
        frame = result[t]
        frame[hy[seen], hx[seen]] = np.clip(colour[seen] + 0.5, 0, 255).astype(np.uint8)
        unseen_y, unseen_x = hy[~seen], hx[~seen]
        if unseen_y.size and t > 0 and flows.to_prev[t] is not None:
            dy, dx = flows.at(flows.to_prev[t], unseen_y.astype(np.float32), unseen_x.astype(np.float32))
            qy, qx = unseen_y + dy, unseen_x + dx
            inside = (qy >= 0) & (qy <= hole.shape[1] - 1) & (qx >= 0) & (qx <= hole.shape[2] - 1)
            # Only a still background reuses the previous fill; moving content is inpainted afresh.
            inside &= dy * dy + dx * dx < settings.carry_motion_px ** 2
            # A still camera over a changing scene (someone walks behind the caption) must not
            # freeze the old fill: the ring of known pixels around the hole shows the change.
            inside &= _ring_still(crop, probe, hole, t, unseen_y, unseen_x, settings.carry_ring_change)
            carried = sample_bilinear(result, np.full(int(inside.sum()), t - 1), qy[inside], qx[inside])
            frame[unseen_y[inside], unseen_x[inside]] = np.clip(carried + 0.5, 0, 255).astype(np.uint8)
            unseen_y, unseen_x = unseen_y[~inside], unseen_x[~inside]
        if unseen_y.size:
            todo = np.zeros(frame.shape[:2], np.uint8)
            todo[unseen_y, unseen_x] = 255
            r = settings.inpaint_radius
            by0, by1 = max(0, unseen_y.min() - r - 1), min(frame.shape[0], unseen_y.max() + r + 2)
            bx0, bx1 = max(0, unseen_x.min() - r - 1), min(frame.shape[1], unseen_x.max() + r + 2)
            frame[by0:by1, bx0:bx1] = cv2.inpaint(np.ascontiguousarray(frame[by0:by1, bx0:bx1]),
                                                  todo[by0:by1, bx0:bx1], r, cv2.INPAINT_TELEA)
    return out
