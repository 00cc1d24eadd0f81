"""Frame-exact decoding of a frame range [start, stop) as display-oriented RGB.

Frames are identified by presentation timestamp, never by seeking to a time and hoping:
seek to a keyframe a little before the first wanted pts, decode forward, drop frames before
it and take exactly ``stop - start`` frames. On the way from the keyframe to the first
wanted frame, non-reference pictures shown before it are not decoded at all: no other
picture needs them. A seek that lands after the wanted frame (a wrong keyframe index, an
open GOP) is retried from further back and finally from the start; files whose packet
timestamps cannot locate frames (``info.exact_seek`` False) are decoded by counting
frames from the start, once per process and file: the open decode is kept between calls
(``_ForwardCursor``) with its last few frames, so a worker asking for the chunks of such a
file in order (each overlapping the previous one) decodes the file once in all, not once
per chunk. Seekable files keep their open decode too: a range that starts inside the kept
frames or a little after the decoder's position continues it instead of seeking (a seek
decodes again from the keyframe before the range, up to a whole GOP per chunk).
Every loop ends at end of file.

A ``Frame`` keeps the decoder's own picture and makes RGB only when asked: the encoder
takes untouched frames in the decoder's YUV, with no RGB round trip at all.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np

from clear_ray.media._io import open_container
from clear_ray.media.errors import CorruptStream
from clear_ray.media.probe import DEFAULT_MAX_PIXELS, VideoInfo, check_frame_size, inspect

_log = logging.getLogger(__name__)

# swscale matrix ids (SWS_CS_*) per FFmpeg colour-space name.
_SWS_MATRIX = {"bt709": 1, "fcc": 4, "bt470bg": 5, "smpte170m": 5, "smpte240m": 7, "bt2020nc": 9, "bt2020c": 9}
# Seek this many frames before the wanted one: a keyframe's dts precedes its pts by the
# B-frame delay, and indexes are often by dts.
_SEEK_MARGIN_FRAMES = 4
# After an overshoot, retry this many frames further back before decoding from the start.
_RETRY_BACK_FRAMES = (300,)
# Files without exact seeking: decoded frames kept for a following overlapping range, open
# decodes kept between calls, and frame timestamps remembered per file.
_CURSOR_TAIL_FRAMES = 32
# ... and at most this many bytes of them (32 frames of 4K 10-bit 4:4:4 would be 1.6 GB).
_CURSOR_TAIL_BYTES = 128 << 20
# A seekable file's kept decode serves a range starting at most this many frames after its
# position: decoding them costs less than a seek's average walk from the preceding keyframe
# (half a GOP, and GOPs of 250 frames are common), and it covers a pool of two workers
# taking a video's chunks in turn (the gap is one chunk stride, 65 frames by default).
_CONTINUE_MAX_GAP_FRAMES = 96
_IDLE_CURSORS = 2
_REMEMBERED_TIMESTAMPS = 8
# One thread per conversion: swscale's automatic slice threads cost CPU (3.5 -> 5.1 ms per
# 720p accurate YUV->RGB here) and the pipeline already works on many frames at once.
SWS_THREADS = 1


RgbMode = Literal["accurate", "fast"]


class Frame:
    """One decoded source frame: its index in presentation order, its source pts (video
    stream time base) and ``video_frame``, the decoder's picture (stored orientation, the
    source's pixel format). ``rgb_hwc_u8`` (display-oriented) is converted on first use
    and kept."""

    __slots__ = ("index", "pts", "video_frame", "_to_rgb", "_rgb_hwc_u8")

    def __init__(self, index: int, pts: int, video_frame: Any, to_rgb: Callable[[Any], np.ndarray]):
        self.index = index
        self.pts = pts
        self.video_frame = video_frame
        self._to_rgb = to_rgb
        self._rgb_hwc_u8: np.ndarray | None = None

    @property
    def rgb_hwc_u8(self) -> np.ndarray:
        if self._rgb_hwc_u8 is None:
            self._rgb_hwc_u8 = self._to_rgb(self.video_frame)
        return self._rgb_hwc_u8

    def __repr__(self) -> str:
        return f"Frame(index={self.index}, pts={self.pts})"


def yuv_matrix(info: VideoInfo) -> int:
    """The YUV<->RGB matrix (swscale id) for this source, used alike by decode and encode:
    as tagged, else BT.709 for HD and BT.601 for SD (what players assume)."""
    if info.color_space in _SWS_MATRIX:
        return _SWS_MATRIX[info.color_space]
    return 1 if info.coded_width >= 1280 or info.coded_height >= 720 else 5


def yuv_range(info: VideoInfo) -> str:
    """"JPEG" (full) or "MPEG" (limited) range, as swscale names them."""
    return "JPEG" if info.color_range == "pc" or info.pix_fmt.startswith("yuvj") else "MPEG"


def sws_flags(mode: RgbMode = "accurate") -> int:
    """swscale flags. "accurate": rounding and full chroma interpolation, so that an
    RGB->YUV->RGB round trip keeps 61 dB PSNR instead of 44 dB (bikes.mp4), for ~10x slower
    YUV->RGB (3.5 vs 0.35 ms per 720p frame here). "fast": swscale's unscaled converter,
    42-44 dB PSNR from the accurate RGB on bbb 720p: for a remover's input only (its output
    counts only where its mask is set); output pixels always take the accurate path."""
    from av.video.reformatter import Interpolation

    if mode == "fast":
        return int(Interpolation.BILINEAR)
    if mode != "accurate":
        raise ValueError(f"rgb must be 'accurate' or 'fast', got {mode!r}")
    return int(Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT)


class _RgbConverter:
    def __init__(self, info: VideoInfo, mode: RgbMode = "accurate"):
        self.matrix = yuv_matrix(info)
        self.range = yuv_range(info)
        self.quarter_turns = info.rotation // 90
        self.flags = sws_flags(mode)

    def __call__(self, frame: Any) -> np.ndarray:
        rgb = frame.reformat(format="rgb24", src_colorspace=self.matrix, src_color_range=self.range,
                             dst_color_range="JPEG", interpolation=self.flags, threads=SWS_THREADS)
        array_hwc_u8 = rgb.to_ndarray()
        if self.quarter_turns:
            array_hwc_u8 = np.ascontiguousarray(np.rot90(array_hwc_u8, self.quarter_turns))
        return array_hwc_u8


def _tail_frames(info: VideoInfo) -> int:
    """Decoded pictures a kept decode holds for an overlapping next range."""
    bytes_per_sample = 2 if info.bit_depth > 8 else 1
    frame_bytes = info.coded_width * info.coded_height * 3 * bytes_per_sample  # 4:4:4 at most
    return max(1, min(_CURSOR_TAIL_FRAMES, _CURSOR_TAIL_BYTES // max(1, frame_bytes)))


class _Unreliable(Exception):
    """Decoded timestamps disagree with the scan: fall back to counting from the start."""


def iter_frames(uri: str, start: int, stop: int, *, start_pts: int | None = None, info: VideoInfo | None = None,
                storage_options: dict | None = None, timestamps: Sequence[int] | np.ndarray | None = None,
                max_pixels: int = DEFAULT_MAX_PIXELS, threads: int = 0,
                rgb: RgbMode = "accurate", keep_decoder: bool = False) -> Iterator[Frame]:
    """Exactly the frames [start, stop) in presentation order.

    ``start_pts`` (= ``frame_timestamps(uri)[start]``) avoids a re-scan of the file (pass
    ``info`` too to skip reading the header again); it names the first frame with that pts.
    ``timestamps`` (the whole frame_timestamps array) instead lets every decoded frame be
    checked against the scan and also places ``start`` among repeated pts. Without either
    the function scans the file itself. ``threads`` bounds the decoder's threads (0 = FFmpeg's
    choice). Files whose timestamps cannot locate frames (``exact_seek`` False) are decoded
    from the start and need the scan whatever is passed. ``rgb`` picks the conversion each
    frame's ``rgb_hwc_u8`` gets (see ``sws_flags``). ``keep_decoder`` keeps this seekable
    file's decode open after the range, with its last frames, for a next range of the file
    that starts in them or a little after (a worker's next chunk); any call continues a
    kept decode that can serve it.
    """
    uri = str(uri)
    sws_flags(rgb)  # refuses an unknown mode before any work
    if start_pts is None and timestamps is None:
        info, timestamps = inspect(uri, storage_options=storage_options, max_pixels=max_pixels)
        total: int | None = info.num_frames
    elif info is None:
        # The caller knows where the range starts: the header and first frames suffice.
        info, _ = inspect(uri, storage_options=storage_options, max_pixels=max_pixels, scan=False)
        total = len(timestamps) if timestamps is not None else None  # (declared counts are not counts)
    else:
        total = info.num_frames
    if start < 0 or stop < start or (total is not None and stop > total):
        raise ValueError(f"frame range [{start}, {stop}) outside the {total} frames of {uri}")
    check_frame_size(info.coded_width, info.coded_height, max_pixels, uri)
    if start == stop:
        return
    if timestamps is not None:
        timestamps = np.asarray(timestamps, dtype=np.int64)
        start_pts = int(timestamps[start])
    reader = _RangeReader(uri, info, storage_options, threads, timestamps, total if total is not None else stop, rgb,
                          keep_decoder)
    if info.exact_seek:
        produced = 0
        try:
            for frame in reader.by_seek(start, stop, int(start_pts)):
                produced += 1
                yield frame
            return
        except _Unreliable:
            pass
        # Frames already handed out were verified; continue exactly where they stopped.
        if reader.timestamps is None:
            reader.timestamps = _remembered_timestamps(uri, info, storage_options, max_pixels)
        start += produced
    elif reader.timestamps is None:
        reader.timestamps = _remembered_timestamps(uri, info, storage_options, max_pixels)
    yield from reader.by_count(start, stop)


def decode(uri: str, start: int, stop: int, *, into: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
    """Frames [start, stop) as one ``(T, H, W, 3)`` uint8 array, display-oriented
    (keyword arguments as for ``iter_frames``; a remover's input may use ``rgb="fast"``).

    ``into``: an array to fill instead of a new one when it has room (at least ``stop -
    start`` frames of this size); the result is then a view of it. A worker decoding chunk
    after chunk passes the previous chunk's array: a fresh one is ~0.25 GB at 720p whose
    every page the kernel must fault in and zero again (measured: a third of the chunk's
    decode time)."""
    frames_thwc_u8: np.ndarray | None = None
    count = 0
    for frame in iter_frames(uri, start, stop, **kwargs):
        rgb_hwc_u8 = frame.rgb_hwc_u8
        frame._rgb_hwc_u8 = None  # the array below keeps the only copy
        if frames_thwc_u8 is None:
            # One allocation filled in place: stacking a list of frames at the end held two
            # copies of the window at once (~0.5 GB for 81 frames at 1080p) and cost as much
            # time as the decode itself.
            if into is not None and into.dtype == np.uint8 and into.shape[0] >= stop - start \
                    and into.shape[1:] == rgb_hwc_u8.shape:
                frames_thwc_u8 = into
            else:
                frames_thwc_u8 = np.empty((stop - start, *rgb_hwc_u8.shape), np.uint8)
        frames_thwc_u8[count] = rgb_hwc_u8
        count += 1
    if frames_thwc_u8 is None:
        info = kwargs.get("info")
        height, width = (info.height, info.width) if info is not None else (0, 0)
        return np.zeros((0, height, width, 3), np.uint8)
    return frames_thwc_u8[:count]


class _RangeReader:
    def __init__(self, uri: str, info: VideoInfo, storage_options: dict | None, threads: int,
                 timestamps: np.ndarray | None, total: int, rgb: RgbMode = "accurate", keep_decoder: bool = False):
        self.uri, self.info, self.storage_options, self.threads = uri, info, storage_options, threads
        self.keep_decoder = keep_decoder
        self.timestamps = timestamps
        self.total = total  # the frame count errors report
        self.to_rgb = _RgbConverter(info, rgb)

    def key(self) -> tuple:
        """Names this file and its description: a cursor is reused only for the same one."""
        return self.uri, self.info.size_bytes, self.info.num_frames, self.info.start_pts, self.info.pix_fmt

    def _frames(self, container: Any, skip_before_pts: int | None = None) -> Iterator[Any]:
        """Decoded frames to EOF. Packets shown before ``skip_before_pts`` are decoded only
        if other pictures may refer to them (skip_frame NONREF, set per packet: a frame
        thread copies the setting when it takes the packet)."""
        stream = container.streams[self.info.video_stream_index]
        context = stream.codec_context
        context.thread_type = "AUTO"
        context.thread_count = self.threads
        skipping = False
        for packet in container.demux(stream):  # ends with the flush packet at EOF
            skip = skip_before_pts is not None and packet.pts is not None and packet.pts < skip_before_pts
            if skip != skipping:
                context.skip_frame = "NONREF" if skip else "DEFAULT"
                skipping = skip
            for frame in packet.decode():
                _DECODED[0] += 1
                yield frame

    def _expected(self, index: int) -> int | None:
        return int(self.timestamps[index]) if self.timestamps is not None else None

    def by_seek(self, start: int, stop: int, start_pts: int) -> Iterator[Frame]:
        kept = _ForwardCursor.take_near(self, start)
        if kept is not None:
            yield from self._continue(kept, start, stop)
            return
        ticks = self.info.frame_ticks
        equal_before = 0
        if self.timestamps is not None:  # repeated pts: skip the copies that precede `start`
            equal_before = start - int(np.searchsorted(self.timestamps, start_pts, side="left"))
        targets: list[int | None] = [start_pts - _SEEK_MARGIN_FRAMES * ticks]
        targets += [start_pts - back * ticks for back in _RETRY_BACK_FRAMES]
        targets.append(None)  # from the start, no seek
        index = start
        for target in targets:
            if target is not None and target <= self.info.start_pts:
                continue  # as good as starting from the beginning
            with contextlib.ExitStack() as stack:
                container = stack.enter_context(open_container(self.uri, self.storage_options))
                if target is not None:
                    container.seek(target, stream=container.streams[self.info.video_stream_index],
                                   backward=True, any_frame=False)
                first = True
                skip_equal = equal_before
                previous: int | None = None
                decoded = self._frames(container, skip_before_pts=start_pts)
                tail: collections.deque = collections.deque(maxlen=_tail_frames(self.info))
                for frame in decoded:
                    pts = frame.pts
                    if pts is None or (previous is not None and pts < previous):
                        _log.debug("%s: decoded pts %s out of order; counting frames instead", self.uri, pts)
                        raise _Unreliable()
                    previous = pts
                    if first:
                        first = False
                        # After a seek the first frame must be the keyframe at or before the
                        # wanted one; anything else means the index lied.
                        overshoot = pts > start_pts or (pts == start_pts and equal_before > 0)
                        if target is None and overshoot:
                            raise _Unreliable()  # even the first frame is after the wanted one
                        if target is not None and (overshoot or not frame.key_frame):
                            _log.debug("%s: seek to pts %d landed on pts %d (keyframe: %s) for frame %d; "
                                       "retrying further back", self.uri, target, pts, frame.key_frame, start)
                            break
                    if pts < start_pts:
                        continue
                    if pts == start_pts and skip_equal > 0:
                        skip_equal -= 1
                        continue
                    expected = self._expected(index)
                    if expected is not None and pts != expected:
                        _log.debug("%s: frame %d decoded with pts %d, scan says %d; counting frames instead",
                                   self.uri, index, pts, expected)
                        raise _Unreliable()
                    tail.append((index, frame))
                    yield Frame(index, pts, frame, self.to_rgb)
                    index += 1
                    if index == stop:
                        if self.keep_decoder:  # the next range (a worker's next chunk) may continue here
                            _ForwardCursor(self, stack.pop_all(), decoded, index, tail).put_back()
                        return
                else:
                    if first and target is not None:
                        _log.debug("%s: seek to pts %d found no frame; retrying further back", self.uri, target)
                        continue  # the seek went past the end: retry from further back
                    raise CorruptStream(f"file ends after {index} of {self.total} frames", self.uri)
        raise CorruptStream(f"cannot decode frame {start} (pts {start_pts})", self.uri)

    def _continue(self, cursor: "_ForwardCursor", start: int, stop: int) -> Iterator[Frame]:
        """Frames [start, stop) from a kept decode of this seekable file, with the checks a
        seek's decode gets; a disagreement raises _Unreliable (iter_frames then counts)."""
        index = start
        previous: int | None = None
        try:
            for number, video_frame in cursor.frames(start, stop):
                pts = video_frame.pts
                expected = self._expected(number)
                if pts is None or (previous is not None and pts < previous) or \
                        (expected is not None and pts != expected):
                    _log.debug("%s: continued decode gave pts %s for frame %d; counting frames instead",
                               self.uri, pts, number)
                    raise _Unreliable()
                previous = pts
                yield Frame(number, pts, video_frame, self.to_rgb)
                index = number + 1
            if index < stop:
                raise CorruptStream(f"file ends after {cursor.position} of {self.total} frames", self.uri)
        except BaseException:
            cursor.close()
            raise
        cursor.put_back()

    def by_count(self, start: int, stop: int) -> Iterator[Frame]:
        """Count frames from the start: for files whose pts cannot be trusted. Continues a
        kept decode of this file when one stands at or before ``start`` (or still holds
        ``start`` among its last frames) instead of decoding from frame 0 again."""
        cursor = _ForwardCursor.take(self, start)
        try:
            index = start
            for number, video_frame in cursor.frames(start, stop):
                yield Frame(number, int(self.timestamps[number]), video_frame, self.to_rgb)
                index = number + 1
            if index < stop:
                raise CorruptStream(f"file ends after {cursor.position} of {self.total} frames", self.uri)
        except BaseException:
            cursor.close()
            raise
        cursor.put_back()


_DECODED = [0]  # frames the decoder produced in this process (tests count them)


def decoded_frame_count() -> int:
    """Frames decoded so far in this process, skipped or not (for tests and benchmarks)."""
    return _DECODED[0]


class _ForwardCursor:
    """An open decode of one file that counts frames from its start, kept between calls
    (per process, a few at a time, one user at a time), with its last
    ``_CURSOR_TAIL_FRAMES`` pictures for a next range that overlaps this one (handed out
    again as they are: nothing modifies a decoded picture, the encoder patches copies)."""

    _idle: "collections.OrderedDict[tuple, _ForwardCursor]" = collections.OrderedDict()
    _lock = threading.Lock()

    def __init__(self, reader: _RangeReader, stack: contextlib.ExitStack | None = None,
                 decoded: Iterator[Any] | None = None, position: int = 0,
                 tail: "collections.deque | None" = None):
        """A new decode from frame 0, or (``stack``, ``decoded``, ``position``, ``tail``)
        an open one that stands before frame ``position`` (a finished seek's)."""
        self.key = reader.key()
        if stack is None:
            stack = contextlib.ExitStack()
            decoded = reader._frames(stack.enter_context(open_container(reader.uri, reader.storage_options)))
        self._stack = stack
        self._decoded = decoded
        self.position = position  # index of the next frame the decoder gives
        self._tail: collections.deque = collections.deque(tail or (), maxlen=_tail_frames(reader.info))

    @classmethod
    def take(cls, reader: _RangeReader, start: int) -> "_ForwardCursor":
        """The kept cursor for this file if it can serve ``start``, else a new one from frame 0."""
        with cls._lock:
            cursor = cls._idle.pop(reader.key(), None)
        if cursor is not None and (cursor.position <= start or cursor._holds(start)):
            return cursor
        if cursor is not None:
            cursor.close()
        return cls(reader)

    @classmethod
    def take_near(cls, reader: _RangeReader, start: int) -> "_ForwardCursor | None":
        """The kept decode of this file if it holds ``start`` or stands a little before it
        (cheaper than a seek), else None (a kept decode that is not used stays kept)."""
        with cls._lock:
            cursor = cls._idle.get(reader.key())
            if cursor is None or not (cursor._holds(start) or
                                      cursor.position <= start <= cursor.position + _CONTINUE_MAX_GAP_FRAMES):
                return None
            del cls._idle[reader.key()]
            return cursor

    def _holds(self, index: int) -> bool:
        return bool(self._tail) and self._tail[0][0] <= index < self.position

    def frames(self, start: int, stop: int) -> Iterator[tuple[int, Any]]:
        for number, picture in list(self._tail):
            if start <= number < stop:
                yield number, picture
        while self.position < stop:
            video_frame = next(self._decoded, None)
            if video_frame is None:
                return
            number = self.position
            self.position += 1
            if number >= stop - self._tail.maxlen:
                self._tail.append((number, video_frame))
            if number >= start:
                yield number, video_frame

    def put_back(self) -> None:
        with self._lock:
            previous = self._idle.pop(self.key, None)
            self._idle[self.key] = self
            while len(self._idle) > _IDLE_CURSORS:
                self._idle.popitem(last=False)[1].close()
        if previous is not None and previous is not self:
            previous.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._decoded.close()
        self._stack.close()


def close_kept_decodes() -> None:
    """Close every decode kept open for a next range (the next range of any file seeks)."""
    with _ForwardCursor._lock:
        kept = list(_ForwardCursor._idle.values())
        _ForwardCursor._idle.clear()
    for cursor in kept:
        cursor.close()


_TIMESTAMPS: "collections.OrderedDict[tuple, np.ndarray]" = collections.OrderedDict()


def _remembered_timestamps(uri: str, info: VideoInfo, storage_options: dict | None, max_pixels: int) -> np.ndarray:
    """frame_timestamps of a file, scanned once per process (the scan reads the whole file)."""
    key = (uri, info.size_bytes, info.num_frames, info.start_pts)
    with _ForwardCursor._lock:
        if key in _TIMESTAMPS:
            _TIMESTAMPS.move_to_end(key)
            return _TIMESTAMPS[key]
    timestamps = inspect(uri, storage_options=storage_options, max_pixels=max_pixels)[1]
    with _ForwardCursor._lock:
        _TIMESTAMPS[key] = timestamps
        while len(_TIMESTAMPS) > _REMEMBERED_TIMESTAMPS:
            _TIMESTAMPS.popitem(last=False)
    return timestamps
