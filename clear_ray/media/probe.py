"""What a video is: exact frame count and timestamps, rate, size, rotation, colour, streams.

The frame count and every frame's pts come from a demux-only scan of the video packets
(no decoding, so a long film costs one sequential read). A container's declared frame
count is never used as the count. A short decode of the first frames checks that the
packet timestamps are the ones the decoder will report (AVI with B-frames stores them in
decode order; raw streams have none): where they are not, ``exact_seek`` is False and
ranges are decoded from the start, counting frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pydantic

from clear_ray.media._io import extension_of, open_container, source_size
from clear_ray.media.errors import CorruptStream, FrameTooLarge, NoVideoStream, UnsupportedFormat
from clear_ray.media.hdr import hdr_metadata

DEFAULT_MAX_PIXELS = 8192 * 4320

# FFmpeg's names for the AVColor* enums (libavutil/pixfmt.h); unspecified (2) is None.
COLOR_SPACE_NAMES = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
                     8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc",
                     13: "chroma-derived-c", 14: "ictcp"}
COLOR_RANGE_NAMES = {1: "tv", 2: "pc"}
COLOR_PRIMARIES_NAMES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
                         9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
COLOR_TRC_NAMES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "linear",
                   9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1",
                   14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}
HDR_TRANSFERS = {"smpte2084", "arib-std-b67"}
# The deepest samples the output encoder (x264) codes: deeper sources are refused rather
# than silently rounded.
MAX_BIT_DEPTH = 10
MOV_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"
MATROSKA = "matroska,webm"
# Frames decoded at probe time to check the packet timestamps against the decoder's.
_CHECK_FRAMES = 8


class VideoInfo(pydantic.BaseModel, frozen=True):
    """Everything the pipeline needs to know about one input video (JSON-serialisable)."""

    uri: str
    container: str  # PyAV format name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    extension: str  # the source file's extension, e.g. ".mp4"
    num_frames: int  # exact, from the demux scan
    fps: str  # average rate as a rational, e.g. "30000/1001"
    time_base: str  # video stream time base, e.g. "1/30000"
    start_pts: int  # pts of frame 0
    variable_frame_rate: bool
    width: int  # display size (after rotation)
    height: int
    coded_width: int  # stored size (before rotation; not padded to macroblocks)
    coded_height: int
    rotation: int  # 0/90/180/270, counter-clockwise, as the display matrix says
    duration_s: float
    pix_fmt: str
    bit_depth: int
    color_range: str | None
    color_space: str | None
    color_primaries: str | None
    color_trc: str | None
    audio_streams: int
    subtitle_streams: int
    has_chapters: bool
    size_bytes: int
    # Additions beyond the agreed API (all defaulted):
    audio_codecs: tuple[str, ...] = ()
    subtitle_codecs: tuple[str, ...] = ()
    video_stream_index: int = 0  # index among the container's streams
    exact_seek: bool = True  # False: packet pts cannot locate frames; ranges decode from the start
    sample_aspect_ratio: str = "1/1"  # pixel shape of the stored frames (anamorphic DVD: "32/27")
    # HDR10 static metadata of the first frame, in x264/x265's own option syntax:
    # "G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)" (0.00002 / 0.0001 cd/m2 units) and "MaxCLL,MaxFALL".
    mastering_display: str | None = None
    content_light_level: str | None = None

    @property
    def fps_fraction(self) -> Fraction:
        return Fraction(self.fps)

    @property
    def time_base_fraction(self) -> Fraction:
        return Fraction(self.time_base)

    @property
    def frame_ticks(self) -> int:
        """Nominal frame duration in time-base ticks (at least 1)."""
        fps = self.fps_fraction
        return max(1, round(1 / (fps * self.time_base_fraction))) if fps > 0 else 1


@dataclass(frozen=True)
class _Scan:
    pts_sorted: np.ndarray  # int64, presentation order
    packets_total: int  # including packets the container marks as discarded (edit lists)
    missing_pts: bool
    last_duration: int  # ticks of the last presented frame; 0 if unknown
    first_dts: int | None  # decode time of the first packet, where the container has one
    step: int  # the most common frame interval in ticks (>= 1)
    data_end_s: float  # where the last packet of any stream ends, in seconds


def pick_video_stream(container: Any, uri: str) -> Any:
    """The main video stream: the first one that is not cover art."""
    import av

    for stream in container.streams.video:
        if av.stream.Disposition.attached_pic not in stream.disposition:
            return stream
    kinds = sorted({stream.type for stream in container.streams}) or ["none"]
    raise NoVideoStream(f"no video stream (streams: {', '.join(kinds)})", uri)


def check_frame_size(width: int, height: int, max_pixels: int, uri: str) -> None:
    if width <= 0 or height <= 0:
        raise CorruptStream(f"video stream declares no frame size ({width}x{height})", uri)
    if width * height > max_pixels:
        raise FrameTooLarge(f"frame size {width}x{height} = {width * height} pixels exceeds "
                            f"max_pixels={max_pixels}", uri)


def _most_common(values: list[int] | np.ndarray) -> int:
    positive = [int(value) for value in values if value > 0]
    return max(set(positive), key=positive.count) if positive else 0


def _scan_packets(container: Any, stream: Any) -> _Scan:
    pts: list[int | None] = []
    durations: list[int] = []
    first_dts: int | None = None
    total = 0
    data_end_s = 0.0
    # Every stream is demuxed (the bytes are read anyway): where the data ends tells a
    # truncated file from a complete one.
    for packet in container.demux():
        if packet.size == 0:  # the demuxer's end-of-stream flush packet
            continue
        if packet.pts is not None and packet.time_base is not None:
            data_end_s = max(data_end_s, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        if packet.stream_index != stream.index:
            continue
        total += 1
        if packet.is_discard:  # before an edit list's start: the decoder drops these frames
            continue
        if not pts:
            first_dts = packet.dts
        pts.append(packet.pts)
        durations.append(packet.duration or 0)
    missing = any(value is None for value in pts)
    if missing or not pts:
        pts_sorted = np.zeros(0, np.int64)
        last_duration = 0
    else:
        order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
        pts_sorted = np.asarray(pts, dtype=np.int64)[order]
        last_duration = durations[int(order[-1])]
    step = _most_common(np.diff(pts_sorted)) or _most_common(durations)
    if step <= 0:
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        step = max(1, round(1 / (rate * stream.time_base)))
    if missing:
        pts_sorted = even_grid(next((v for v in pts if v is not None), first_dts or 0), step, len(pts))
    return _Scan(pts_sorted, total, missing, last_duration, first_dts, step, data_end_s)


def even_grid(first: int, step: int, count: int) -> np.ndarray:
    """Timestamps for frames whose container timestamps cannot be used: evenly spaced."""
    return int(first) + int(step) * np.arange(count, dtype=np.int64)


def _first_frames(container: Any, stream: Any, count: int) -> list[Any]:
    stream.codec_context.thread_type = "AUTO"
    frames = []
    for frame in container.decode(stream):  # ends at EOF
        frames.append(frame)
        if len(frames) >= count:
            break
    return frames


def _rotation_of(frame: Any, uri: str) -> int:
    angle = float(frame.rotation or 0)
    quarter = round(angle / 90.0)
    if abs(angle - 90 * quarter) > 1.0:
        raise UnsupportedFormat(f"display matrix rotates by {angle:g} degrees (only multiples of 90)", uri)
    return (90 * quarter) % 360


def _pixel_bits(pix_fmt: str | None) -> int:
    import av

    if not pix_fmt:
        return 8
    return max(component.bits for component in av.VideoFormat(pix_fmt).components)


def _rational_text(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def _average_fps(declared: Fraction | None, pts_sorted: np.ndarray, time_base: Fraction,
                 variable: bool) -> Fraction:
    if len(pts_sorted) > 1 and pts_sorted[-1] > pts_sorted[0]:
        measured = Fraction(len(pts_sorted) - 1) / (int(pts_sorted[-1] - pts_sorted[0]) * time_base)
        # A constant rate as declared is the nicer rational (30000/1001 rather than a 1 ms
        # time base's 29.97...); a variable rate's average is measured from the timestamps
        # alone (the declared one depends on how a muxer counted the last frame).
        if not variable and declared and declared > 0 and abs(float(declared / measured) - 1) < 0.02:
            return Fraction(declared)
        return measured.limit_denominator(100_000)
    return Fraction(declared) if declared and declared > 0 else Fraction(25)


@dataclass(frozen=True)
class _Header:
    """What the container says before anything is decoded."""
    format_name: str
    index: int
    time_base: Fraction
    declared_frames: int
    declared_rate: Fraction | None
    declared_s: float | None
    audio_codecs: tuple[str, ...]
    subtitle_codecs: tuple[str, ...]
    has_chapters: bool
    bit_depth: int


@dataclass(frozen=True)
class _Head:
    """What the first decoded frames say."""
    pts: list[int | None]
    color: dict[str, int]
    rotation: int
    pix_fmt: str
    coded_size: tuple[int, int]
    aspect: Fraction
    mastering_display: str | None = None
    content_light_level: str | None = None


def _read_header(container: Any, uri: str, max_pixels: int, check_supported: bool) -> tuple[_Header, Any]:
    stream = pick_video_stream(container, uri)
    context = stream.codec_context
    check_frame_size(context.width, context.height, max_pixels, uri)
    bit_depth = _pixel_bits(context.pix_fmt)
    if check_supported and bit_depth > MAX_BIT_DEPTH:
        raise UnsupportedFormat(f"{bit_depth}-bit video ({context.pix_fmt}); at most {MAX_BIT_DEPTH}-bit sources "
                                "are supported", uri)
    streams = list(container.streams)
    header = _Header(
        format_name=container.format.name, index=stream.index, time_base=Fraction(stream.time_base),
        declared_frames=int(stream.frames or 0),
        declared_rate=stream.average_rate or stream.guessed_rate or stream.base_rate,
        declared_s=container.duration / 1_000_000 if container.duration else None,
        audio_codecs=tuple(s.codec_context.name for s in streams if s.type == "audio"),
        subtitle_codecs=tuple(s.codec_context.name if s.codec_context else "unknown"
                              for s in streams if s.type == "subtitle"),
        has_chapters=bool(container.chapters()), bit_depth=bit_depth)
    return header, stream


def _decode_head(uri: str, storage_options: dict | None, index: int, count: int) -> _Head:
    with open_container(uri, storage_options) as container:
        stream = container.streams[index]
        first = _first_frames(container, stream, count)
        context = stream.codec_context
        if not first:
            raise CorruptStream("no frame of the video stream can be decoded", uri)
        head = first[0]
        color = {name: getattr(head, attr) or getattr(context, attr, 0) for name, attr in
                 (("space", "colorspace"), ("range", "color_range"), ("primaries", "color_primaries"),
                  ("trc", "color_trc"))}
        aspect = context.sample_aspect_ratio or stream.sample_aspect_ratio or Fraction(1)
        mastering, light = hdr_metadata(head)
        return _Head(pts=[frame.pts for frame in first], color=color, rotation=_rotation_of(head, uri),
                     pix_fmt=head.format.name, coded_size=(head.width, head.height),
                     aspect=Fraction(aspect) if aspect > 0 else Fraction(1), mastering_display=mastering,
                     content_light_level=light)


def _check_supported(uri: str, bit_depth: int, pix_fmt: str, color: dict[str, int]) -> None:
    # 8- and 10-bit, SDR and HDR (PQ, HLG) are all kept as they are; deeper samples are not.
    if bit_depth > MAX_BIT_DEPTH:
        raise UnsupportedFormat(f"{bit_depth}-bit video ({pix_fmt}); at most {MAX_BIT_DEPTH}-bit sources "
                                "are supported", uri)


def _check_integrity(header: _Header, scan: _Scan, uri: str) -> None:
    if len(scan.pts_sorted) == 0:
        raise CorruptStream("video stream has no frames", uri)
    if header.format_name == MOV_FAMILY and header.declared_frames > scan.packets_total:
        # MP4 sample tables are exact: fewer packets than samples means the file was cut.
        raise CorruptStream(f"file ends after {scan.packets_total} of {header.declared_frames} frames", uri)
    declared_s = header.declared_s
    if header.format_name == MATROSKA and declared_s and scan.data_end_s < declared_s - max(0.5, 0.02 * declared_s):
        # Matroska's declared duration is where its muxer saw the last packet end.
        raise CorruptStream(f"file ends after {len(scan.pts_sorted)} frames: its data stops at "
                            f"{scan.data_end_s:.2f} s of a declared {declared_s:.2f} s", uri)


def _timeline(scan: _Scan, decoded_pts: list[int | None]) -> tuple[np.ndarray, bool]:
    """Every frame's pts and whether packet pts can locate frames (``exact_seek``)."""
    pts_sorted = scan.pts_sorted
    if scan.missing_pts or None in decoded_pts:
        return pts_sorted, False
    # Frames before the first decodable one (a stream cut mid-GOP) never come out of the
    # decoder: they are not frames of this video.
    lead = int(np.searchsorted(pts_sorted, decoded_pts[0], side="left"))
    if decoded_pts == pts_sorted[lead:lead + len(decoded_pts)].tolist():
        return pts_sorted[lead:], True
    # Packet pts are not presentation times (AVI stores B-frame streams in decode order):
    # frames are counted, and timed on an even grid from the first decode time, as players do.
    first_time = scan.first_dts if scan.first_dts is not None else int(pts_sorted[0])
    return even_grid(first_time, scan.step, len(pts_sorted)), False


def _make_info(uri: str, size_bytes: int, header: _Header, head: _Head, **timing: Any) -> VideoInfo:
    coded_width, coded_height = head.coded_size
    turned = head.rotation in (90, 270)
    return VideoInfo(
        uri=uri, container=header.format_name, extension=extension_of(uri),
        time_base=_rational_text(header.time_base), width=coded_height if turned else coded_width,
        height=coded_width if turned else coded_height, coded_width=coded_width, coded_height=coded_height,
        rotation=head.rotation, pix_fmt=head.pix_fmt, bit_depth=max(header.bit_depth, _pixel_bits(head.pix_fmt)),
        color_range=COLOR_RANGE_NAMES.get(head.color["range"]), color_space=COLOR_SPACE_NAMES.get(head.color["space"]),
        color_primaries=COLOR_PRIMARIES_NAMES.get(head.color["primaries"]),
        color_trc=COLOR_TRC_NAMES.get(head.color["trc"]), audio_streams=len(header.audio_codecs),
        subtitle_streams=len(header.subtitle_codecs), has_chapters=header.has_chapters, size_bytes=size_bytes,
        audio_codecs=header.audio_codecs, subtitle_codecs=header.subtitle_codecs, video_stream_index=header.index,
        sample_aspect_ratio=_rational_text(head.aspect), mastering_display=head.mastering_display,
        content_light_level=head.content_light_level, **timing)


def inspect(uri: str, *, storage_options: dict | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
            check_supported: bool = True, scan: bool = True) -> tuple[VideoInfo, np.ndarray | None]:
    """``(info, pts of every frame in presentation order)``: the one scan probe and
    frame_timestamps share. Raises MediaError subclasses.

    ``scan=False`` reads only the header and the first frames and returns ``(info, None)``
    with the container's *declared* frame count, rate and duration: enough to decode a
    range whose start_pts is known, never for planning."""
    uri = str(uri)
    size_bytes = source_size(uri, storage_options)
    # 1. Header (frame size checked before anything is decoded), 2. the demux-only scan.
    with open_container(uri, storage_options) as container:
        header, stream = _read_header(container, uri, max_pixels, check_supported)
        packets = _scan_packets(container, stream) if scan else None
    if packets is not None:
        _check_integrity(header, packets, uri)
    # 3. The first frames: rotation and colour as the decoder reports them, and whether
    #    packet timestamps are the frames' timestamps.
    head = _decode_head(uri, storage_options, header.index,
                        min(_CHECK_FRAMES, len(packets.pts_sorted)) if packets is not None else _CHECK_FRAMES)
    if check_supported:
        _check_supported(uri, max(header.bit_depth, _pixel_bits(head.pix_fmt)), head.pix_fmt, head.color)
    if packets is None:
        rate = Fraction(header.declared_rate) if header.declared_rate and header.declared_rate > 0 else Fraction(25)
        increasing = None not in head.pts and all(a <= b for a, b in zip(head.pts, head.pts[1:]))
        info = _make_info(uri, size_bytes, header, head, num_frames=header.declared_frames, fps=_rational_text(rate),
                          start_pts=int(head.pts[0] or 0), variable_frame_rate=False,
                          duration_s=float(header.declared_s or 0.0), exact_seek=increasing)
        return info, None

    pts_sorted, exact_seek = _timeline(packets, head.pts)
    deltas = np.diff(pts_sorted)
    # Up to one tick of jitter is rounding (29.97 fps in a 1 ms time base), not VFR.
    variable = bool(len(deltas) > 1 and int(deltas.max() - deltas.min()) > 1)
    fps = _average_fps(header.declared_rate, pts_sorted, header.time_base, variable)
    last = packets.last_duration if packets.last_duration > 0 and exact_seek else packets.step
    duration_s = float((int(pts_sorted[-1] - pts_sorted[0]) + last) * header.time_base)
    info = _make_info(uri, size_bytes, header, head, num_frames=len(pts_sorted), fps=_rational_text(fps),
                      start_pts=int(pts_sorted[0]), variable_frame_rate=variable, duration_s=duration_s,
                      exact_seek=exact_seek)
    return info, pts_sorted


def probe(uri: str, *, storage_options: dict | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
          check_supported: bool = True) -> VideoInfo:
    """Describe a video (local path or fsspec URL). ``check_supported=False`` describes
    sources deeper than 10 bits instead of raising UnsupportedFormat."""
    return inspect(uri, storage_options=storage_options, max_pixels=max_pixels,
                   check_supported=check_supported)[0]


def frame_timestamps(uri: str, *, storage_options: dict | None = None,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """int64 pts (in the video stream's time base) of every frame, presentation order."""
    return inspect(uri, storage_options=storage_options, max_pixels=max_pixels)[1]
