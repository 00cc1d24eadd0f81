"""SegmentEncoder: one independently decodable H.264 piece of the output video.

A segment covers a contiguous range of frames, starts with an IDR frame and carries the
source's own timestamps in the source's time base, so that ``mux`` can join segments by
stream copy. Frames arrive display-oriented (as removers see them) and are turned back to
the source's stored orientation; RGB->YUV uses the source's matrix and range, the same
ones decoding used, so colours round-trip. Segments are MP4 files whatever their name:
MP4 keeps any time base exactly (1/30000, 1/90000, ...) and negative B-frame dts.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from clear_ray.media._io import atomic_output
from clear_ray.media.decode import sws_flags, yuv_matrix, yuv_range
from clear_ray.media.probe import (
    COLOR_PRIMARIES_NAMES,
    COLOR_RANGE_NAMES,
    COLOR_SPACE_NAMES,
    COLOR_TRC_NAMES,
    VideoInfo,
)

SEGMENT_FORMAT = "mp4"
_SWS_TO_COLOR_SPACE = {1: 1, 4: 4, 5: 6, 7: 7, 9: 9}  # swscale matrix -> AVColorSpace tag


def mov_options(time_base: Fraction) -> dict[str, str]:
    """MP4/MOV muxer options that keep timestamps exact: an edit list that starts the video
    late (a segment from the middle of a film) is written in the movie time scale, 1/1000 s
    by default, which would round 10010/30000 s to 9990/30000 s."""
    track_scale = time_base.denominator
    while track_scale < 10000:  # what the muxer itself picks for a video track
        track_scale *= 2
    return {"movie_timescale": str(track_scale)}


def output_pix_fmt(width: int, height: int) -> str:
    """yuv420p when both sides are even; odd sizes keep their exact size with 4:4:4."""
    return "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"


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
        self._pix_fmt = output_pix_fmt(info.coded_width, info.coded_height)
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
            stream.options = {"crf": str(crf), "preset": preset, "x264-params": params}
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
        import av

        expected = (self.info.height, self.info.width, 3)
        if frame_rgb_hwc_u8.dtype != np.uint8 or frame_rgb_hwc_u8.shape != expected:
            raise ValueError(f"frame must be uint8 {expected}, got {frame_rgb_hwc_u8.dtype} {frame_rgb_hwc_u8.shape}")
        pts = int(pts)
        if self._last_pts is not None:
            if pts < self._last_pts:
                raise ValueError(f"pts must increase: {pts} after {self._last_pts}")
            if pts == self._last_pts:
                pts += 1  # a source that repeats a pts: keep the stream valid, one tick later
        coded_hwc_u8 = frame_rgb_hwc_u8
        if self._quarter_turns:
            coded_hwc_u8 = np.rot90(frame_rgb_hwc_u8, -self._quarter_turns)
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(coded_hwc_u8), format="rgb24")
        yuv = rgb.reformat(format=self._pix_fmt, dst_colorspace=self._matrix, src_color_range="JPEG",
                           dst_color_range=self._range, interpolation=self._flags)
        yuv.pts = pts
        yuv.time_base = self._time_base
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
