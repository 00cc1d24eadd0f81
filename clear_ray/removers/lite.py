"""`lite`: the embedded, mask-free CPU subtitle remover.

No OCR, no user mask, no download: a 40k-parameter segmenter trained here on generated
captions finds the text (lite_detect; caption boxes are taken whole, lite_box), the
background is brought in from the frames where it shows along optical flow and inpainted
where no frame shows it (lite_fill). The mask returned is exactly 0 wherever nothing
changed, so the shared compositor leaves those pixels bit-exact; a chunk without text
comes back as the identity backend's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from clear_ray.removers.base import RemovalResult

if TYPE_CHECKING:
    from clear_ray.config import RemoverConfig

VERSION = "lite-v3.1"  # v3.1: a tie between two exact caption boxes goes to the earlier frames


class LiteRemover:
    name: ClassVar[str] = "lite"
    wants_gpu: ClassVar[bool] = False

    def __init__(self, config: "RemoverConfig", device: str = "cpu"):
        if device not in ("cpu",) and not device.startswith("cuda"):
            raise ValueError(f"lite runs on the CPU; unknown device {device!r}")
        self.remover_config = config
        self.config = config.lite
        self.weights_path, self.detect_settings, self.fill_settings = self._settings(config)
        self._net = None

    @staticmethod
    def _settings(config: "RemoverConfig"):
        from clear_ray.removers.lite_detect import DetectSettings
        from clear_ray.removers.lite_fill import FillSettings
        from clear_ray.removers.lite_net import DEFAULT_WEIGHTS

        lite = config.lite
        detect = DetectSettings(
            detect_short_side=lite.detect_short_side, detect_stride=lite.detect_stride,
            threshold=lite.threshold, low_threshold=lite.low_threshold, persist_threshold=lite.persist_threshold,
            min_component_px=lite.min_component_px, dilate_px=lite.dilate_px, feather_px=lite.feather_px)
        fill = FillSettings(flow_short_side=lite.flow_short_side, margin_frac=lite.margin_frac,
                            inpaint_radius=lite.inpaint_radius)
        return lite.weights or DEFAULT_WEIGHTS, detect, fill

    @classmethod
    def fingerprint_for(cls, config: "RemoverConfig") -> str:
        """From the settings alone (no network loaded): the driver's resume key."""
        from clear_ray.removers.lite_net import weights_digest

        weights_path, detect, fill = cls._settings(config)
        # Every knob, including the ones fixed in code (DetectSettings / FillSettings
        # defaults), and the weight bytes: changing any of them re-processes inputs.
        settings = {"config": config.lite.model_dump(mode="json", exclude={"num_threads", "weights"}),
                    "detect": dataclasses.asdict(detect), "fill": dataclasses.asdict(fill)}
        blob = json.dumps({"version": VERSION, "settings": settings, "weights": weights_digest(weights_path)},
                          sort_keys=True)
        return f"{VERSION}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"

    def fingerprint(self) -> str:
        return self.fingerprint_for(self.remover_config)

    def _setup(self):
        import cv2
        import torch

        from clear_ray.removers.lite_net import load_text_net

        # The Ray actor reserves one CPU: more threads would only fight its neighbours.
        cv2.setNumThreads(self.config.num_threads)
        torch.set_num_threads(self.config.num_threads)
        if self._net is None:
            self._net = load_text_net(self.weights_path)
        return self._net

    def remove(self, frames_thwc_u8: np.ndarray) -> RemovalResult:
        from clear_ray.removers.lite_detect import detect_text
        from clear_ray.removers.lite_fill import fill_holes, fill_margin

        if frames_thwc_u8.dtype != np.uint8 or frames_thwc_u8.ndim != 4 or frames_thwc_u8.shape[-1] != 3:
            raise ValueError(f"lite needs uint8 frames (T,H,W,3), got {frames_thwc_u8.dtype} {frames_thwc_u8.shape}")
        if min(frames_thwc_u8.shape[1:3]) < 8 or frames_thwc_u8.shape[0] < 1:
            raise ValueError(f"lite needs frames of at least 8x8 and one frame, got {frames_thwc_u8.shape}")
        net = self._setup()
        detection = detect_text(net, frames_thwc_u8, self.detect_settings)
        frame_hw = frames_thwc_u8.shape[1:3]
        if detection.box is None:  # an empty region: nothing changed
            return RemovalResult(frames_thwc_u8[:, :0, :0], detection.box_mask_thw_f32, frame_hw=frame_hw)
        # Everything after detection works on a crop: the detection box (which holds every
        # mask pixel) plus the context the fill and the box fits read around it, not on
        # full-frame intermediates (a chunk of 81 720p frames is 224 MB per RGB copy and 300 MB
        # per float mask; fresh memory is slow to fault in). The crop gives the whole frames'
        # result, pixel for pixel, and the result is the detection box alone.
        rects = [r for rs in detection.boxes for r in rs] if self.config.unblend_boxes else []
        work = _work_region(detection.box, rects, fill_margin(self.fill_settings, frame_hw) + _UNBLEND_CONTEXT_PX,
                            frame_hw)
        wy0, wy1, wx0, wx1 = work
        y0, y1, x0, x1 = detection.box
        inner = (slice(None), slice(y0 - wy0, y1 - wy0), slice(x0 - wx0, x1 - wx0))
        hole_thw = np.zeros((frames_thwc_u8.shape[0], wy1 - wy0, wx1 - wx0), bool)
        hole_thw[inner] = detection.box_mask_thw_f32 > 0
        source = frames_thwc_u8[:, wy0:wy1, wx0:wx1]
        if rects:
            # Semi-transparent boxes are inverted; only their glyphs and side rings are filled.
            source, recovered_thw = self._unblend(source, detection, work, frame_hw)
            hole_thw &= ~recovered_thw
        filled = fill_holes(source, hole_thw, self.fill_settings, frame_hw=frame_hw,
                            box=(y0 - wy0, y1 - wy0, x0 - wx0, x1 - wx0))
        return RemovalResult(np.ascontiguousarray(filled[inner]), detection.box_mask_thw_f32,
                             origin_yx=(y0, x0), frame_hw=frame_hw)

    def _unblend(self, crop_thwc_u8: np.ndarray, detection, work: tuple[int, int, int, int],
                 frame_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Box inversion on the work region ``crop_thwc_u8`` of the frames: (un-blended crop,
        bool crop of the pixels so recovered)."""
        import cv2

        from clear_ray.removers.lite_detect import masks_in_region
        from clear_ray.removers.lite_unblend import unblend_boxes

        wy0, _, wx0, _ = work
        glyph = masks_in_region(detection.glyph_prob_thw_f32, frame_hw, work, self.detect_settings) > 0
        # Outline, shadow and anti-aliasing reach past where the segmenter is sure.
        grow = max(2, int(round(self.config.unblend_glyph_margin * frame_hw[0])))
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        for t in np.flatnonzero(glyph.any(axis=(1, 2))):
            glyph[t] = cv2.dilate(glyph[t].astype(np.uint8), disk) > 0
        boxes = [[(ry0 - wy0, ry1 - wy0, rx0 - wx0, rx1 - wx0) for ry0, ry1, rx0, rx1 in rects]
                 for rects in detection.boxes]
        return unblend_boxes(crop_thwc_u8, boxes, glyph, grow)


# Pixels around a caption box that lite_unblend may read: the exact side is looked for within
# ``search_px`` (4) of the detected one and the fit reads up to 2 x (gap_px + band_px) (8)
# beyond it; the rest is slack.
_UNBLEND_CONTEXT_PX = 32


def _work_region(box: tuple[int, int, int, int], rects: list[tuple[int, int, int, int]], context_px: int,
                 frame_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The detection box and every candidate caption box, grown by ``context_px`` and
    clipped to the frame: the only pixels the fill and the box inversion read."""
    y0, y1, x0, x1 = box
    for ry0, ry1, rx0, rx1 in rects:
        y0, y1, x0, x1 = min(y0, ry0), max(y1, ry1), min(x0, rx0), max(x1, rx1)
    return (max(0, y0 - context_px), min(frame_hw[0], y1 + context_px),
            max(0, x0 - context_px), min(frame_hw[1], x1 + context_px))
