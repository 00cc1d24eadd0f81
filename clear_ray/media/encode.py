"""SegmentEncoder: one independently decodable H.264 piece of the output video.

Segments keep the source's sample layout: 8- or 10-bit, 4:2:0 / 4:2:2 / 4:4:4 (x264's
High, High 10, High 4:2:2 and High 4:4:4 Predictive profiles; x264 picks the profile
from the pixel format), its colour tags and its HDR10 static metadata (mastering display
and content light level SEI). CRF 0 means lossless (x264 QP 0: sample-exact at any bit
depth, where x264's CRF 0 is lossless only at 8 bits).

A segment covers a contiguous range of frames, starts with an IDR frame and carries the
source's own timestamps in the source's time base, so that ``mux`` can join segments by
stream copy. Segments are MP4 files whatever their name: MP4 keeps any time base exactly
(1/30000, 1/90000, ...) and negative B-frame dts.

Three ways in, cheapest first:
- ``write_source``: a decoded source frame nobody changed goes to x264 in the decoder's
  own YUV (no RGB round trip: faster, and no conversion loss);
- ``write_patched``: a source frame with an RGB patch over part of it; only the patch's
  box (chroma-aligned, plus a margin) goes RGB->YUV, and only the luma pixels and chroma
  samples the patch touches replace the decoder's YUV;
- ``write``: a whole display-oriented RGB frame, turned back to the stored orientation.
RGB->YUV uses the source's matrix and range, the same ones decoding used, so colours
round-trip.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from clear_ray.media._io import atomic_output
from clear_ray.media.decode import SWS_THREADS, Frame, sws_flags, yuv_matrix, yuv_range
from clear_ray.media.pictures import copy_picture, plane_arrays
from clear_ray.media.probe import (
    COLOR_PRIMARIES_NAMES,
    COLOR_RANGE_NAMES,
    COLOR_SPACE_NAMES,
    COLOR_TRC_NAMES,
    VideoInfo,
)

SEGMENT_FORMAT = "mp4"
_SWS_TO_COLOR_SPACE = {1: 1, 4: 4, 5: 6, 7: 7, 9: 9}  # swscale matrix -> AVColorSpace tag
# The planar YUV layouts segments are coded in (all of them x264's), by log2 chroma
# subsampling (horizontal, vertical) and bit depth.
_LAYOUTS = {((1, 1), 8): "yuv420p", ((1, 0), 8): "yuv422p", ((0, 0), 8): "yuv444p",
            ((1, 1), 10): "yuv420p10le", ((1, 0), 10): "yuv422p10le", ((0, 0), 10): "yuv444p10le"}
_CHROMA_SHIFT = {name: shift for (shift, _), name in _LAYOUTS.items()}
# Untouched pixels converted around a patch: swscale's RGB->YUV 4:2:0 chroma filter
# reaches one chroma sample beyond a block, and with 2 luma pixels of real neighbours the
# patch's YUV equals a whole-frame conversion's bit for bit (measured; 4 to be safe).
_PATCH_MARGIN = 4
_PICTURE_TYPE_NONE = 0  # a decoded frame's I/P/B type would force x264's frame types

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open


def mov_options(time_base: Fraction) -> dict[str, str]:
    """MP4/MOV muxer options that keep timestamps exact: an edit list that starts the video
    late (a segment from the middle of a film) is written in the movie time scale, 1/1000 s
    by default, which would round 10010/30000 s to 9990/30000 s."""
    track_scale = time_base.denominator
    while track_scale < 10000:  # what the muxer itself picks for a video track
        track_scale *= 2
    return {"movie_timescale": str(track_scale)}


def chroma_shift(pix_fmt: str) -> tuple[int, int]:
    """log2 chroma subsampling (horizontal, vertical) of a YUV pixel format; (0, 0) for
    formats without subsampled chroma (RGB, gray)."""
    import av

    video_format = av.VideoFormat(pix_fmt)
    if video_format.is_rgb or len(video_format.components) < 3:
        return 0, 0
    return (1 if video_format.chroma_width(1024) < 1024 else 0), (1 if video_format.chroma_height(1024) < 1024 else 0)


def output_pix_fmt(info: VideoInfo) -> str:
    """The source's own layout where x264 codes it: its chroma subsampling (4:2:0, 4:2:2,
    4:4:4; RGB-coded sources 4:4:4) at 8 bits, or 10 for 9- and 10-bit sources. Odd sizes
    cannot be chroma-subsampled: they keep their exact size with 4:4:4."""
    depth = 10 if info.bit_depth > 8 else 8
    shift = chroma_shift(info.pix_fmt)
    if shift not in ((1, 1), (1, 0), (0, 0)) or (info.coded_width % 2 and shift[0]) or \
            (info.coded_height % 2 and shift[1]):
        shift = (0, 0)  # (4:1:1, 4:4:0 ... have no x264 profile: 4:4:4 loses nothing)
    return _LAYOUTS[shift, depth]


def coded_box(box: Box, quarter_turns: int, coded_height: int, coded_width: int) -> Box:
    """The stored-orientation box holding the display box ``box`` of a frame shown as
    ``np.rot90(stored, quarter_turns)``."""
    y0, y1, x0, x1 = box
    turns = quarter_turns % 4
    if turns == 0:
        return box
    if turns == 1:
        return x0, x1, coded_width - y1, coded_width - y0
    if turns == 2:
        return coded_height - y1, coded_height - y0, coded_width - x1, coded_width - x0
    return coded_height - x1, coded_height - x0, y0, y1


def _is_planar_yuv(video_format: Any) -> bool:
    """YUV that swscale turns into our layouts without touching colours (8 to 16 bits)."""
    return (not video_format.is_rgb and not video_format.has_palette and bool(video_format.components)
            and all(component.bits <= 16 for component in video_format.components))


def _tag(names: dict[int, str], name: str | None, unspecified: int = 2) -> int:
    # 2 is "unspecified" in AVColorSpace / Primaries / Trc; AVColorRange uses 0.
    reverse = {value: key for key, value in names.items()}
    return reverse.get(name, unspecified) if name is not None else unspecified


def color_tags(info: VideoInfo) -> dict[str, int]:
    """Encoder colour tags: the source's own (untagged stays untagged, so players assume
    what they assumed for the source). An RGB-coded source gets the matrix we used."""
    space = _tag(COLOR_SPACE_NAMES, info.color_space)
    if info.color_space == "gbr" or space not in (1, 2, 4, 5, 6, 7, 9, 10):
        space = _SWS_TO_COLOR_SPACE[yuv_matrix(info)]
    color_range = 2 if yuv_range(info) == "JPEG" else _tag(COLOR_RANGE_NAMES, info.color_range, 0)
    return {"colorspace": space, "color_range": color_range,
            "color_primaries": _tag(COLOR_PRIMARIES_NAMES, info.color_primaries),
            "color_trc": _tag(COLOR_TRC_NAMES, info.color_trc)}


class SegmentEncoder:
    """Context manager writing one H.264 segment; the file appears under ``path`` only on
    a successful ``close()`` (a failed or abandoned encoder leaves nothing behind)."""

    def __init__(self, path: str | Path, info: VideoInfo, *, crf: int = 17, preset: str = "medium",
                 threads: int = 0, storage_options: dict | None = None):
        import av

        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {crf}")
        self.path = str(path)
        self.info = info
        self.frames_written = 0
        self._last_pts: int | None = None
        self._quarter_turns = info.rotation // 90
        self._matrix, self._range, self._flags = yuv_matrix(info), yuv_range(info), sws_flags()
        self._time_base = Fraction(info.time_base)
        self._pix_fmt = output_pix_fmt(info)
        self._stack = contextlib.ExitStack()
        temp = self._stack.enter_context(atomic_output(self.path, storage_options))
        try:
            self._container = av.open(str(temp), "w", format=SEGMENT_FORMAT,
                                      options=mov_options(self._time_base))
            fps = info.fps_fraction if info.fps_fraction > 0 else Fraction(25)
            stream = self._container.add_stream("libx264", rate=fps)
            stream.width, stream.height = info.coded_width, info.coded_height
            stream.pix_fmt = self._pix_fmt
            stream.time_base = self._time_base
            context = stream.codec_context
            context.time_base = self._time_base
            context.framerate = fps
            context.thread_count = threads
            context.sample_aspect_ratio = Fraction(info.sample_aspect_ratio)
            for attribute, value in color_tags(info).items():
                setattr(context, attribute, value)
            # stitchable: headers do not depend on the content, so independently encoded
            # segments share one SPS/PPS and join by stream copy. force-cfr (constant-rate
            # sources): the bitstream's timing info states the frame rate rather than the
            # time base (as FFmpeg's own encodes do; tools read 12800 "fps" otherwise);
            # frames keep the pts they are given either way.
            params = "stitchable=1" + ("" if info.variable_frame_rate else ":force-cfr=1")
            if info.coded_width % 16:
                # x264's macroblock-tree rate control (core 165, as PyAV ships it) reads an
                # uninitialised stack variable when the width is not a whole number of
                # macroblocks (valgrind, "created by a stack allocation" under
                # x264_encoder_encode: 100x60 and 100x96 yes, 128x96 and 128x60 no; gone with
                # mbtree=0 alone, not with weightp=0, b-adapt=0 or subme=1). Its bytes then
                # depend on what ran on the thread's stack before, i.e. on thread timing.
                # Off for those widths only: it saves ~14 % of the bytes at CRF 17 (bikes.mp4).
                params += ":mbtree=0"
            if info.mastering_display:
                params += f":mastering-display={info.mastering_display}"
            if info.content_light_level:
                params += f":cll={info.content_light_level}"
            # x264's CRF scale starts at -12 at 10 bits, so CRF 0 is not lossless there: QP 0 is.
            quality = {"qp": "0"} if crf == 0 else {"crf": str(crf)}
            stream.options = {**quality, "preset": preset, "x264-params": params}
            if info.rotation:
                stream.set_display_rotation(info.rotation)
            self._stream = stream
        except BaseException:
            self._abort()
            raise

    def __enter__(self) -> "SegmentEncoder":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def write(self, pts: int, frame_rgb_hwc_u8: np.ndarray) -> None:
        """Encode one display-oriented RGB frame with its source pts (increasing)."""
        expected = (self.info.height, self.info.width, 3)
        if frame_rgb_hwc_u8.dtype != np.uint8 or frame_rgb_hwc_u8.shape != expected:
            raise ValueError(f"frame must be uint8 {expected}, got {frame_rgb_hwc_u8.dtype} {frame_rgb_hwc_u8.shape}")
        coded_hwc_u8 = frame_rgb_hwc_u8
        if self._quarter_turns:
            coded_hwc_u8 = np.rot90(frame_rgb_hwc_u8, -self._quarter_turns)
        self._encode(self._to_yuv(np.ascontiguousarray(coded_hwc_u8)), pts)

    def write_source(self, frame: Frame) -> None:
        """Encode a decoded frame of this encoder's source, unchanged, at its own pts, from
        the decoder's YUV: handed to x264 as it is when its pixel format is the output's,
        resampled YUV->YUV (same matrix and range) for another YUV layout; only an
        RGB-coded or paletted source goes through RGB. The frame is consumed (its pts
        and picture type are rewritten)."""
        target = self._output_yuv(frame.video_frame)
        if target is None:
            self.write(frame.pts, frame.rgb_hwc_u8)
            return
        self._encode(target, frame.pts)

    def write_patched(self, frame: Frame, box: Box, patch_rgb_hwc_u8: np.ndarray, touched_hw: np.ndarray) -> None:
        """Encode ``frame`` with ``patch_rgb_hwc_u8`` (display-oriented, covering ``box``)
        in place of its pixels where ``touched_hw`` is set. Untouched luma pixels, and
        chroma samples none of whose pixels is touched, stay the decoder's YUV exactly;
        the rest is what converting the whole patched RGB frame would give. The frame is
        left as it is: the patch goes into a copy (the decoder may still refer to the
        picture, and a decode that keeps recent frames may hand it out again)."""
        y0, y1, x0, x1 = box
        shape = (y1 - y0, x1 - x0)
        if not (0 <= y0 < y1 <= self.info.height and 0 <= x0 < x1 <= self.info.width):
            raise ValueError(f"patch box {box} is not inside the {self.info.width}x{self.info.height} frame")
        if patch_rgb_hwc_u8.dtype != np.uint8 or patch_rgb_hwc_u8.shape != (*shape, 3) or \
                touched_hw.shape != shape:
            raise ValueError(f"patch must be uint8 {(*shape, 3)} with a {shape} mask, got "
                             f"{patch_rgb_hwc_u8.dtype} {patch_rgb_hwc_u8.shape} and {touched_hw.shape}")
        target = self._output_yuv(frame.video_frame)
        if target is None:  # an RGB-coded source: the whole frame goes through RGB anyway
            full_hwc_u8 = frame.rgb_hwc_u8.copy()
            np.copyto(full_hwc_u8[y0:y1, x0:x1], patch_rgb_hwc_u8, where=touched_hw[..., None].astype(bool))
            self.write(frame.pts, full_hwc_u8)
            return
        turns = self._quarter_turns
        height, width = self.info.coded_height, self.info.coded_width
        cy0, cy1, cx0, cx1 = coded_box(box, turns, height, width)
        shift_x, shift_y = _CHROMA_SHIFT[self._pix_fmt]
        # The region converted: the box grown by the margin, on the chroma grid.
        step_y, step_x = 1 << shift_y, 1 << shift_x
        ry0, rx0 = max(0, (cy0 - _PATCH_MARGIN) // step_y * step_y), max(0, (cx0 - _PATCH_MARGIN) // step_x * step_x)
        ry1 = min(height, -(-(cy1 + _PATCH_MARGIN) // step_y) * step_y)
        rx1 = min(width, -(-(cx1 + _PATCH_MARGIN) // step_x) * step_x)
        region_hwc_u8 = np.array(np.rot90(frame.rgb_hwc_u8, -turns)[ry0:ry1, rx0:rx1])
        touched_region_hw = np.zeros((ry1 - ry0, rx1 - rx0), bool)
        inner = (slice(cy0 - ry0, cy1 - ry0), slice(cx0 - rx0, cx1 - rx0))
        touched_region_hw[inner] = np.rot90(touched_hw, -turns).astype(bool)
        np.copyto(region_hwc_u8[inner], np.rot90(patch_rgb_hwc_u8, -turns), where=touched_region_hw[inner][..., None])
        patch_yuv = self._to_yuv(region_hwc_u8)
        if target is frame.video_frame:
            target = copy_picture(target)
        for number, (plane_hw, patch_plane_hw) in enumerate(zip(plane_arrays(target), plane_arrays(patch_yuv))):
            sy, sx = (0, 0) if number == 0 else (shift_y, shift_x)
            where_hw = touched_region_hw
            if sy or sx:  # a chroma sample changes if any pixel it covers is touched
                rows, cols = where_hw.shape
                where_hw = where_hw.reshape(rows >> sy, 1 << sy, cols >> sx, 1 << sx).any(axis=(1, 3))
            np.copyto(plane_hw[ry0 >> sy:ry1 >> sy, rx0 >> sx:rx1 >> sx], patch_plane_hw, where=where_hw)
        self._encode(target, frame.pts)

    def write_blended(self, frame: Frame, box: Box, alpha_hw_f32: np.ndarray, removed_rgb_hwc: np.ndarray) -> None:
        """The compositor in the source's own samples: ``out = src * (1 - a) + a * removed``
        over ``box`` (display-oriented), where ``a`` is ``alpha_hw_f32`` (the strongest
        of the masks, in [0, 1]) and ``removed`` the colour the masks blend
        towards (RGB, 0..255, float for a mean of several removers). ``removed`` is turned
        into the output's YUV at its bit depth (through 16-bit RGB, so nothing is rounded
        to 8 bits), then each sample blends with the decoder's own sample: luma per pixel,
        a chroma sample with the mean of ``a * removed`` over the pixels it covers. Where
        ``a`` is 0 (a whole chroma block, for chroma) the source sample stays exactly as
        decoded. The decoder's picture is left as it is."""
        y0, y1, x0, x1 = box
        shape = (y1 - y0, x1 - x0)
        if not (0 <= y0 < y1 <= self.info.height and 0 <= x0 < x1 <= self.info.width):
            raise ValueError(f"blend box {box} is not inside the {self.info.width}x{self.info.height} frame")
        if alpha_hw_f32.shape != shape or removed_rgb_hwc.shape != (*shape, 3):
            raise ValueError(f"blend needs a {shape} alpha and {(*shape, 3)} colours, got "
                             f"{alpha_hw_f32.shape} and {removed_rgb_hwc.shape}")
        alpha_hw = np.clip(alpha_hw_f32.astype(np.float32), 0, 1)
        target = self._output_yuv(frame.video_frame)
        if target is None:  # an RGB-coded source: blend its RGB
            full_hwc_u8 = frame.rgb_hwc_u8.copy()
            region = full_hwc_u8[y0:y1, x0:x1]
            blended = np.rint(region * (1 - alpha_hw[..., None]) + alpha_hw[..., None] * removed_rgb_hwc)
            np.copyto(region, np.clip(blended, 0, 255).astype(np.uint8), where=(alpha_hw > 0)[..., None])
            self.write(frame.pts, full_hwc_u8)
            return
        turns = self._quarter_turns
        height, width = self.info.coded_height, self.info.coded_width
        cy0, cy1, cx0, cx1 = coded_box(box, turns, height, width)
        shift_x, shift_y = _CHROMA_SHIFT[self._pix_fmt]
        # The region: the box on the chroma grid (a chroma sample is blended whole).
        step_y, step_x = 1 << shift_y, 1 << shift_x
        ry0, rx0 = cy0 // step_y * step_y, cx0 // step_x * step_x
        ry1, rx1 = min(height, -(-cy1 // step_y) * step_y), min(width, -(-cx1 // step_x) * step_x)
        alpha_region_hw = np.zeros((ry1 - ry0, rx1 - rx0), np.float32)
        inner = (slice(cy0 - ry0, cy1 - ry0), slice(cx0 - rx0, cx1 - rx0))
        alpha_region_hw[inner] = np.rot90(alpha_hw, -turns)
        removed_region_hwc_u16 = np.zeros((ry1 - ry0, rx1 - rx0, 3), np.uint16)
        removed_region_hwc_u16[inner] = np.rint(np.clip(np.rot90(removed_rgb_hwc, -turns), 0, 255) * 257)
        removed_yuv = self._to_yuv444(removed_region_hwc_u16)
        target = copy_picture(target) if target is frame.video_frame else target
        for number, (plane_hw, removed_hw) in enumerate(zip(plane_arrays(target), plane_arrays(removed_yuv))):
            sy, sx = (0, 0) if number == 0 else (shift_y, shift_x)
            weighted_hw = alpha_region_hw * removed_hw
            plane_alpha_hw = alpha_region_hw
            if sy or sx:  # a chroma sample: the mean over the pixels it covers
                rows, cols = alpha_region_hw.shape
                plane_alpha_hw = alpha_region_hw.reshape(rows >> sy, 1 << sy, cols >> sx, 1 << sx).mean(axis=(1, 3))
                weighted_hw = weighted_hw.reshape(rows >> sy, 1 << sy, cols >> sx, 1 << sx).mean(axis=(1, 3))
            source_hw = plane_hw[ry0 >> sy:ry1 >> sy, rx0 >> sx:rx1 >> sx]
            blended_hw = np.rint(source_hw * (1 - plane_alpha_hw) + weighted_hw)
            np.copyto(source_hw, blended_hw.astype(source_hw.dtype), where=plane_alpha_hw > 0)
        self._encode(target, frame.pts)

    def _to_yuv444(self, coded_hwc_u16: np.ndarray) -> Any:
        """16-bit RGB -> full-resolution YUV at the output's bit depth (one chroma sample
        per pixel: the blend, not swscale, decides how chroma is subsampled)."""
        import av

        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(coded_hwc_u16), format="rgb48le")
        layout = _LAYOUTS[(0, 0), 10 if self.info.bit_depth > 8 else 8]
        return rgb.reformat(format=layout, dst_colorspace=self._matrix, src_color_range="JPEG",
                            dst_color_range=self._range, interpolation=self._flags, threads=SWS_THREADS)

    def _output_yuv(self, video_frame: Any) -> Any | None:
        """``video_frame`` in the output's pixel format without passing through RGB, or
        None where it is not YUV of the coded size."""
        if (video_frame.width, video_frame.height) != (self.info.coded_width, self.info.coded_height):
            return None
        if video_frame.format.name == self._pix_fmt:
            return video_frame
        if not _is_planar_yuv(video_frame.format):
            return None
        # (yuvj420p, nv12, p010, a 4:2:0 of odd size ... -> the output layout; same matrix
        # and range: no colour change.)
        return video_frame.reformat(format=self._pix_fmt, src_colorspace=self._matrix, dst_colorspace=self._matrix,
                                    src_color_range=self._range, dst_color_range=self._range,
                                    interpolation=self._flags, threads=SWS_THREADS)

    def _to_yuv(self, coded_hwc_u8: np.ndarray) -> Any:
        import av

        rgb = av.VideoFrame.from_ndarray(coded_hwc_u8, format="rgb24")
        return rgb.reformat(format=self._pix_fmt, dst_colorspace=self._matrix, src_color_range="JPEG",
                            dst_color_range=self._range, interpolation=self._flags, threads=SWS_THREADS)

    def _encode(self, yuv: Any, pts: int) -> None:
        pts = int(pts)
        if self._last_pts is not None:
            if pts < self._last_pts:
                raise ValueError(f"pts must increase: {pts} after {self._last_pts}")
            if pts == self._last_pts:
                pts += 1  # a source that repeats a pts: keep the stream valid, one tick later
        yuv.pts = pts
        yuv.time_base = self._time_base
        yuv.pict_type = _PICTURE_TYPE_NONE
        self._mux(self._stream.encode(yuv))
        self._last_pts = pts
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and move the finished file to ``path``."""
        if self._container is None:
            return
        try:
            if self.frames_written == 0:
                raise ValueError(f"segment {self.path} has no frames")
            self._mux(self._stream.encode(None))
            self._container.close()
            self._container = None
        except BaseException:
            self._abort()
            raise
        self._stack.close()  # commits: rename / upload

    def _mux(self, packets: list[Any]) -> None:
        for packet in packets:
            self._container.mux(packet)

    def _abort(self) -> None:
        if getattr(self, "_container", None) is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        # Unwind atomic_output with an error so that nothing is committed.
        self._stack.__exit__(RuntimeError, RuntimeError("segment aborted"), None)
