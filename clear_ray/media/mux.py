"""The final file: segments joined by stream copy, plus every audio and subtitle stream of
the source copied packet for packet, chapters, container and stream metadata, rotation
and colour tags. Written to a temporary name and moved into place only when complete.

Copied audio keeps its priming and trimming: MP4 edit lists (AAC) come through as the
source's negative start and durations; Opus moved into MP4/MOV is re-stamped from its own
sample counts in 1/48000 s, starting at minus its pre-skip and ending where the source's
end trimming ends it, so the output's edit list says exactly what the source's OpusHead
and Matroska DiscardPadding said (Matroska's 1 ms timestamps cannot). Outputs are written
bit-exact (no random Matroska UIDs, no muxer version string): the same input and settings
give the same bytes.

Segments are encoded independently, so their decode timestamps are re-derived for the
joined stream: with reorder depth D (how far any packet runs ahead of its presentation
rank), ``dts[j] = sorted_pts[j - D]`` is strictly increasing and never after ``pts[j]``,
across segment boundaries included. Presentation timestamps are never touched.
"""

from __future__ import annotations

import heapq
import io
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from clear_ray.media._io import atomic_output, extension_of, open_container
from clear_ray.media.encode import color_tags, mov_options
from clear_ray.media.errors import CorruptStream, MediaError, UnsupportedFormat
from clear_ray.media.probe import MOV_FAMILY, VideoInfo

_log = logging.getLogger(__name__)

_FORMAT_OF_EXTENSION = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
_MOV_FAMILY_EXTENSIONS = {".mp4", ".m4v", ".m4a", ".3gp", ".3g2", ".mj2"}
# Keys that describe the source file rather than its content; muxers write their own.
_FILE_METADATA = {"major_brand", "minor_version", "compatible_brands", "encoder", "ENCODER", "creation_time"}


def _carries(format_name: str, codecs: Sequence[str]) -> bool:
    import av

    with av.open(io.BytesIO(), "w", format=format_name) as probe_output:
        supported = probe_output.supported_codecs
    return all(codec in supported for codec in codecs)


def output_extension(info: VideoInfo) -> str:
    """".mp4" / ".mov" / ".mkv": the source's container family when it can carry H.264 and
    every copied stream (an .mkv stays .mkv), else Matroska (.webm, .avi, .flv, ...)."""
    if info.container == MOV_FAMILY:
        candidate = ".mov" if info.extension == ".mov" else ".mp4"
        if _carries(_FORMAT_OF_EXTENSION[candidate], ("h264", *info.audio_codecs, *info.subtitle_codecs)):
            return candidate
    return ".mkv"


def output_extension_for(uri: str) -> str:
    """The same rule from the source's name alone, for naming outputs before probing:
    MP4-family names (.mp4, .m4v, .3gp, ...) give ".mp4", ".mov" stays, anything else
    ".mkv". ``output_extension(info)`` is the authority: an MP4 whose streams MP4 cannot
    carry needs ".mkv", and ``mux`` to an ".mp4" name then fails with UnsupportedFormat."""
    extension = extension_of(uri)
    if extension == ".mov":
        return ".mov"
    return ".mp4" if extension in _MOV_FAMILY_EXTENSIONS else ".mkv"


class _SegmentVideo:
    """Pass 1 over the segments: their video packets' pts (decode order), checked."""

    def __init__(self, segment_uris: Sequence[str], info: VideoInfo, storage_options: dict | None):
        self.uris, self.storage_options = segment_uris, storage_options
        self.time_base = Fraction(info.time_base)
        pts_in_decode_order: list[int] = []
        extradata: bytes | None = None
        previous_last: int | None = None
        for uri in segment_uris:
            with open_container(uri, storage_options) as container:
                stream = container.streams.video[0]
                if extradata is None:
                    extradata = bytes(stream.codec_context.extradata or b"")
                elif bytes(stream.codec_context.extradata or b"") != extradata:
                    raise MediaError("segments were encoded with different H.264 parameters "
                                     "(size, pixel format or profile) and cannot be joined", uri)
                scale = Fraction(stream.time_base) / self.time_base
                segment_pts = [self._to_source_ticks(packet.pts, scale, uri)
                               for packet in container.demux(stream) if packet.size]
            if not segment_pts:
                raise MediaError("segment has no video packets", uri)
            if previous_last is not None and min(segment_pts) <= previous_last:
                segment_pts = _after(segment_pts, previous_last, uri)
            previous_last = max(segment_pts)
            pts_in_decode_order += segment_pts
        if len(pts_in_decode_order) != info.num_frames:
            raise MediaError(f"segments hold {len(pts_in_decode_order)} frames, the source has {info.num_frames}",
                             info.uri)
        self.pts = np.asarray(pts_in_decode_order, dtype=np.int64)
        self.sorted_pts = np.sort(self.pts)
        self.dts = _derived_dts(self.pts, self.sorted_pts)
        self.durations = _display_durations(self.pts, self.sorted_pts, info)

    @staticmethod
    def _to_source_ticks(pts: int | None, scale: Fraction, uri: str) -> int:
        if pts is None:
            raise MediaError("segment packet without pts", uri)
        ticks = pts * scale
        if ticks.denominator != 1:
            raise MediaError(f"segment time base cannot express the source time base exactly ({scale})", uri)
        return int(ticks)

    def packets(self, out_stream: Any) -> Iterator[tuple[float, int, Any]]:
        """Pass 2: the packets themselves, re-stamped, as (dts seconds, order, packet)."""
        position = 0
        for uri in self.uris:
            with open_container(uri, self.storage_options) as container:
                stream = container.streams.video[0]
                for packet in container.demux(stream):
                    if not packet.size:
                        continue
                    packet.pts = int(self.pts[position])
                    packet.dts = int(self.dts[position])
                    packet.duration = int(self.durations[position])
                    packet.time_base = self.time_base
                    packet.stream = out_stream
                    yield float(packet.dts * self.time_base), position, packet
                    position += 1


def _after(segment_pts: list[int], previous_last: int, uri: str) -> list[int]:
    """A segment that starts on the previous one's last pts (the source repeats a pts at
    the boundary, as SegmentEncoder.write allows inside a segment): move its frames on by
    a tick each where needed, keeping their order. Real overlaps are errors."""
    presented = sorted(segment_pts)
    if presented[0] < previous_last:
        raise MediaError(f"segment overlaps the previous one (first pts {presented[0]} before the previous "
                         f"segment's last, {previous_last})", uri)
    moved: dict[int, int] = {}
    floor = previous_last
    for pts in presented:
        moved[pts] = floor = max(pts, floor + 1)
    _log.warning("%s: repeats the previous segment's last pts %d; moved by a tick", uri, previous_last)
    return [moved[pts] for pts in segment_pts]


def _derived_dts(pts: np.ndarray, sorted_pts: np.ndarray) -> np.ndarray:
    rank = np.searchsorted(sorted_pts, pts, side="left")
    depth = int(max(0, (np.arange(len(pts)) - rank).max()))
    dts = np.empty_like(pts)
    dts[depth:] = sorted_pts[:len(pts) - depth]
    # The first `depth` packets decode before the first frame is shown: mirror the first
    # frame intervals (as x264 does), so that every dts step is a real frame interval and
    # tools that guess the frame rate from dts steps guess right.
    dts[:depth] = 2 * sorted_pts[0] - sorted_pts[depth - np.arange(depth)]
    return dts


def _display_durations(pts: np.ndarray, sorted_pts: np.ndarray, info: VideoInfo) -> np.ndarray:
    time_base = Fraction(info.time_base)
    span = int(sorted_pts[-1] - sorted_pts[0])
    last = round(Fraction(info.duration_s) / time_base) - span
    gaps = np.append(np.diff(sorted_pts), last if last > 0 else info.frame_ticks)
    return gaps[np.searchsorted(sorted_pts, pts, side="left")]


OPUS_RATE = 48000  # Opus timestamps, pre-skip and packet durations count 48 kHz samples


def opus_packet_samples(data: bytes) -> int:
    """Samples (at 48 kHz) an Opus packet decodes to, from its TOC byte (RFC 6716, 3.1)."""
    if not data:
        return 0
    config, code = data[0] >> 3, data[0] & 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        per_frame = (480, 960, 1920, 2880)[config % 4]
    elif config < 16:  # hybrid: 10, 20 ms
        per_frame = (480, 960)[config % 2]
    else:  # CELT: 2.5, 5, 10, 20 ms
        per_frame = (120, 240, 480, 960)[config % 4]
    frames = 1 if code == 0 else 2 if code in (1, 2) else (data[1] & 0x3F if len(data) > 1 else 0)
    return per_frame * frames


def _skip_samples(packet: Any) -> tuple[int, int]:
    """(samples to drop at the start, samples to drop at the end) a demuxer attached."""
    import struct

    if not packet.has_sidedata("skip_samples"):
        return 0, 0
    data = bytes(packet.get_sidedata("skip_samples"))
    return struct.unpack_from("<II", data) if len(data) >= 8 else (0, 0)


class _OpusClock:
    """Exact 1/48000 timestamps for one Opus stream: the first packet starts at minus the
    pre-skip; the last one lasts only up to the source's end trimming."""

    def __init__(self, stream: Any):
        head = bytes(stream.codec_context.extradata or b"")
        pre_skip = int.from_bytes(head[10:12], "little") if head[:8] == b"OpusHead" and len(head) >= 12 else 0
        self.next_pts = -pre_skip

    def stamp(self, packet: Any) -> None:
        samples = opus_packet_samples(bytes(packet))
        _, end_trim = _skip_samples(packet)
        packet.time_base = Fraction(1, OPUS_RATE)
        packet.pts = packet.dts = self.next_pts
        packet.duration = max(1, samples - end_trim)
        self.next_pts += samples


def _copy_stream_settings(source_stream: Any, out_stream: Any) -> None:
    out_stream.metadata.update({key: value for key, value in source_stream.metadata.items()
                                if key not in _FILE_METADATA})
    try:
        out_stream.disposition = source_stream.disposition
    except (AttributeError, TypeError, ValueError):
        pass  # read-only in some PyAV builds: the muxer then picks defaults


def mux(segment_paths: Sequence[str | Path], source_uri: str, out_uri: str, info: VideoInfo, *,
        storage_options: dict | None = None, segment_storage_options: dict | None = None) -> None:
    """Join ``segment_paths`` (in order) and copy the source's other streams into ``out_uri``.

    The format follows ``out_uri``'s extension (.mp4/.mov/.mkv), else output_extension(info).
    Atomic: nothing appears at ``out_uri`` unless the whole file was written.
    """
    import av

    if not segment_paths:
        raise ValueError("mux needs at least one segment")
    segment_uris = [str(path) for path in segment_paths]
    extension = extension_of(out_uri)
    format_name = _FORMAT_OF_EXTENSION.get(extension) or _FORMAT_OF_EXTENSION[output_extension(info)]
    video = _SegmentVideo(segment_uris, info, segment_storage_options
                          if segment_storage_options is not None else storage_options)

    # bitexact: Matroska would write random segment and track UIDs, MP4 the muxer's version.
    options = {"fflags": "+bitexact", **(mov_options(video.time_base) if format_name in ("mp4", "mov") else {})}
    with atomic_output(out_uri, storage_options) as temp, \
            open_container(source_uri, storage_options) as source, \
            av.open(str(temp), "w", format=format_name, options=options) as output:
        # 1. Streams: the joined video, then every audio / subtitle stream of the source.
        source_video = source.streams[info.video_stream_index]
        # The declared average rate (Matroska's DefaultDuration) as the source declares it.
        rate = source_video.average_rate or info.fps_fraction
        with open_container(segment_uris[0], video.storage_options) as first_segment:
            video_out = output.add_stream_from_template(first_segment.streams.video[0], rate=rate)
        video_out.time_base = video.time_base
        # Container-level colour tags (Matroska colour elements, MP4 colr) that the
        # H.264 bitstream alone may not say, e.g. an explicit limited range.
        for attribute, value in color_tags(info).items():
            setattr(video_out.codec_context, attribute, value)
        if info.rotation:
            video_out.set_display_rotation(info.rotation)
        _copy_stream_settings(source_video, video_out)
        copies: dict[int, Any] = {}
        opus_clocks: dict[int, _OpusClock] = {}
        for stream in source.streams:
            if stream.type in ("audio", "subtitle"):
                try:
                    copies[stream.index] = output.add_stream_from_template(stream)
                except (ValueError, av.error.FFmpegError) as error:
                    raise UnsupportedFormat(f"{format_name} cannot carry the {stream.type} stream "
                                            f"#{stream.index} ({stream.codec_context.name}): {error}",
                                            source_uri) from error
                _copy_stream_settings(stream, copies[stream.index])
                if format_name in ("mp4", "mov") and stream.codec_context.name == "opus":
                    copies[stream.index].time_base = Fraction(1, OPUS_RATE)
                    opus_clocks[stream.index] = _OpusClock(stream)
            elif stream.type == "attachment" and format_name == "matroska":  # fonts for ASS subtitles
                name = stream.metadata.get("filename", f"attachment{stream.index}")
                output.add_attachment(name, stream.mimetype or "application/octet-stream", stream.data)
        # 2. Chapters and container metadata.
        chapters = source.chapters()
        if chapters:
            output.set_chapters(chapters)
        output.metadata.update({key: value for key, value in source.metadata.items() if key not in _FILE_METADATA})

        # 3. Packets, interleaved by decode time (the muxer's interleaver fixes small disorder).
        def copied_packets() -> Iterator[tuple[float, int, Any]]:
            if not copies:
                return
            order = 0
            for packet in source.demux([source.streams[index] for index in copies]):
                if not packet.size:
                    continue
                if packet.stream_index in opus_clocks:
                    opus_clocks[packet.stream_index].stamp(packet)
                stamp = packet.dts if packet.dts is not None else packet.pts
                seconds = float(stamp * packet.time_base) if stamp is not None else 0.0
                packet.stream = copies[packet.stream_index]
                yield seconds, order, packet
                order += 1

        try:
            for _, _, packet in heapq.merge(video.packets(video_out), copied_packets(), key=lambda item: item[:2]):
                output.mux(packet)
        except av.error.FFmpegError as error:
            raise CorruptStream(f"muxing failed: {error.strerror or error}", str(out_uri)) from error
