"""The one compositor, and the streaming stitch of segments.

Every remover's output reaches the video through one rule, computed by ``blend_layers``
(the job blends its terms into the source's own samples, ``SegmentEncoder.write_blended``;
``composite_patch`` / ``composite_frame`` apply them in 8-bit RGB):

    alpha  = max_j m_j
    colour = sum_j w_j m_j removed_j / sum_j w_j m_j
    out    = src * (1 - alpha) + alpha * colour

over the chunks j covering a frame (w_j its blend weight there, m_j its soft mask). The
blend weights only decide *whose* pixels fill a masked place, never *how much* of the
source shows through: where one overlapping chunk masks text and its neighbour misses
it, the text stays hidden (a weighted alpha, sum_j w_j m_j, would let 1 - w_j of it
through). Work
is done only inside the union of the masks' bounding boxes and written back only where
some mask is non-zero, so every other pixel is the decoded source pixel, bit-exact, and
a frame no mask touches is passed through without any arithmetic at all.

``stitch_segment`` streams one segment: one sequential exact decode of its source frames
(a few frames decoded ahead in a thread), one frame composited at a time plus the staged
chunks it reads, each written with its source pts. A frame no mask touches goes to the
encoder in the decoder's own YUV (never converted to RGB); on a touched frame the same
formula is applied by the encoder to the decoder's own samples, at their bit depth, over
the masks' box only (``blend_layers`` + ``SegmentEncoder.write_blended``): untouched
samples keep full precision, 10-bit included.
The job's ``stitch_segment`` task (clear_ray/pipeline/tasks.py) runs it once per segment.
"""

from __future__ import annotations

import itertools
import queue
import threading
from typing import TYPE_CHECKING, Any, Generator, Iterator, Mapping, Sequence

import numpy as np

from clear_ray.chunking import Segment
from clear_ray.staging import StagedChunk, StagedFrame

if TYPE_CHECKING:
    from clear_ray.media import VideoInfo


class StitchError(RuntimeError):
    """The staged chunks and the source disagree (one-line reason)."""


Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open, display orientation


def active_layers(layers: Sequence[tuple[float, StagedFrame]]) -> list[tuple[float, StagedFrame]]:
    """The layers that change the frame: a non-empty mask. A zero blend weight does not
    drop a layer: its mask still hides what it found (its pixels are used only where no
    layer of positive weight masks the place)."""
    return [(weight, frame) for weight, frame in layers if not frame.empty]


# Colour weight of a masking layer whose blend weight is 0 (the very end of a ramp): small
# enough never to matter beside a positive weight, non-zero so the colour is defined.
_MIN_COLOUR_WEIGHT = np.float32(1e-6)


def blend_layers(layers: Sequence[tuple[float, StagedFrame]]) -> tuple[Box, np.ndarray, np.ndarray] | None:
    """The compositor's terms over the union of the layers' mask boxes:
    ``(box, alpha_hw_f32, colour_hwc_f32)`` with alpha = max_j m_j and colour =
    sum_j w_j m_j removed_j / sum_j w_j m_j where alpha > 0 (0 elsewhere), so that
    out = src * (1 - alpha) + alpha * colour. An encoder blends them into the source's own
    samples (``SegmentEncoder.write_blended``); ``composite_patch`` into 8-bit RGB. None
    when no layer touches the frame."""
    active = active_layers(layers)
    if not active:
        return None
    y0 = min(frame.box[0] for _, frame in active)
    y1 = max(frame.box[1] for _, frame in active)
    x0 = min(frame.box[2] for _, frame in active)
    x1 = max(frame.box[3] for _, frame in active)
    alpha_hw_f32 = np.zeros((y1 - y0, x1 - x0), np.float32)
    colour_weight_hw_f32 = np.zeros((y1 - y0, x1 - x0), np.float32)
    colour_sum_hwc_f32 = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
    for weight, frame in active:
        fy0, fy1, fx0, fx1 = frame.box
        window = np.s_[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
        mask_hw_f32 = frame.mask_hw_u8.astype(np.float32) / np.float32(255)  # 255 -> exactly 1.0
        if frame.pixels_mc_u8.shape[0] == mask_hw_f32.size:  # mask set on its whole box (a band)
            removed_hwc_u8 = frame.pixels_mc_u8.reshape(*mask_hw_f32.shape, 3)
        else:
            removed_hwc_u8 = np.zeros((*mask_hw_f32.shape, 3), np.uint8)
            removed_hwc_u8[frame.mask_hw_u8 > 0] = frame.pixels_mc_u8
        np.maximum(alpha_hw_f32[window], mask_hw_f32, out=alpha_hw_f32[window])
        colour_weight_hw = mask_hw_f32 * max(np.float32(weight), _MIN_COLOUR_WEIGHT)
        colour_weight_hw_f32[window] += colour_weight_hw
        colour_sum_hwc_f32[window] += colour_weight_hw[..., None] * removed_hwc_u8
    touched_hw = alpha_hw_f32 > 0
    colour_hwc_f32 = colour_sum_hwc_f32 / np.where(touched_hw, colour_weight_hw_f32, np.float32(1))[..., None]
    return (y0, y1, x0, x1), alpha_hw_f32, colour_hwc_f32


def composite_patch(source_hwc_u8: np.ndarray, layers: Sequence[tuple[float, StagedFrame]]
                    ) -> tuple[Box, np.ndarray, np.ndarray] | None:
    """The compositor over the union of the layers' mask boxes in 8-bit RGB: ``(box,
    patch_hwc_u8, touched_hw)``, where ``patch_hwc_u8`` is the composited box and
    ``touched_hw`` says which of its pixels some mask sets (elsewhere the patch is the
    source pixel). None when no layer touches the frame (``source_hwc_u8`` is then never
    read)."""
    terms = blend_layers(layers)
    if terms is None:
        return None
    (y0, y1, x0, x1), alpha_hw_f32, colour_hwc_f32 = terms
    region_hwc_u8 = source_hwc_u8[y0:y1, x0:x1]
    touched_hw = alpha_hw_f32 > 0
    alpha_hw1 = alpha_hw_f32[..., None]
    patch_hwc_u8 = np.clip(np.rint(region_hwc_u8 * (np.float32(1) - alpha_hw1) + alpha_hw1 * colour_hwc_f32),
                           0, 255).astype(np.uint8)
    # Untouched pixels of the box are the source's, exactly (not a float round trip).
    np.copyto(patch_hwc_u8, region_hwc_u8, where=~touched_hw[..., None])
    return (y0, y1, x0, x1), patch_hwc_u8, touched_hw


def composite_frame(source_hwc_u8: np.ndarray,
                    layers: Sequence[tuple[float, StagedFrame]]) -> np.ndarray:
    """Blend the staged frames ``layers`` (blend weight, staged frame) over one source frame.

    Returns ``source_hwc_u8`` itself (not a copy) when no layer touches the frame."""
    patched = composite_patch(source_hwc_u8, layers)
    if patched is None:
        return source_hwc_u8
    (y0, y1, x0, x1), patch_hwc_u8, touched_hw = patched
    out_hwc_u8 = source_hwc_u8.copy()
    # Written back only where some mask is set: every other pixel stays the source's.
    np.copyto(out_hwc_u8[y0:y1, x0:x1], patch_hwc_u8, where=touched_hw[..., None])
    return out_hwc_u8


def frame_layers(frame_index: int, chunk_indices: Sequence[int],
                 staged_by_chunk: Mapping[int, StagedChunk],
                 weights: Mapping[int, np.ndarray] | Sequence[np.ndarray]) -> list[tuple[float, StagedFrame]]:
    """(weight, staged frame) of every listed chunk whose real frames include ``frame_index``."""
    layers = []
    for chunk_index in chunk_indices:
        staged = staged_by_chunk[chunk_index]
        chunk = staged.chunk
        if chunk.start <= frame_index < chunk.stop:
            offset = frame_index - chunk.start
            layers.append((float(weights[chunk_index][offset]), staged.frames[offset]))
    return layers


def stitch_segment(source_uri: str, info: "VideoInfo", segment: Segment,
                   staged_by_chunk: Mapping[int, StagedChunk],
                   weights: Mapping[int, np.ndarray] | Sequence[np.ndarray], encoder: Any, *,
                   frame_pts: Sequence[int] | np.ndarray,
                   storage_options: Mapping[str, Any] | None = None, decode_threads: int = 0,
                   source_frames: Iterator[Any] | None = None) -> int:
    """Decode, composite and encode the frames of ``segment``; returns the frame count.

    ``frame_pts`` is the whole video's ``frame_timestamps``: the decoder checks every frame
    against it, and each output frame carries its source pts. ``source_frames``, when
    given, is an already positioned stream of decoded source frames to take the segment's
    frames from (one sequential decode across segments, no re-seek per segment)."""
    from clear_ray.media import iter_frames

    missing = [j for j in segment.chunk_indices if j not in staged_by_chunk]
    if missing:
        raise StitchError(f"segment {segment.index} needs chunks {missing}, which are not staged")
    for j in segment.chunk_indices:
        staged = staged_by_chunk[j]
        if (staged.height, staged.width) != (info.height, info.width):
            raise StitchError(f"chunk {j} was staged at {staged.width}x{staged.height}, "
                              f"the source is {info.width}x{info.height}")
    expected = segment.start
    options = dict(storage_options) if storage_options else None
    own_decode: Generator[Any, None, None] | None = None
    if source_frames is None:
        decoded = iter_frames(source_uri, segment.start, segment.stop, start_pts=int(frame_pts[segment.start]),
                              info=info, timestamps=frame_pts, storage_options=options, threads=decode_threads)
        own_decode = prefetched(decoded, depth=PREFETCH_FRAMES)
        frames: Iterator[Any] = own_decode
    else:
        frames = itertools.islice(source_frames, segment.stop - segment.start)
    try:
        for frame in frames:
            if frame.index != expected or int(frame.pts) != int(frame_pts[expected]):
                raise StitchError(f"segment {segment.index}: decoder returned frame {frame.index} "
                                  f"(pts {frame.pts}) where frame {expected} (pts {frame_pts[expected]}) was due")
            layers = active_layers(frame_layers(expected, segment.chunk_indices, staged_by_chunk, weights))
            if layers:  # blended in the source's own samples and bit depth
                encoder.write_blended(frame, *blend_layers(layers))
            else:
                encoder.write_source(frame)
            expected += 1
    finally:
        if own_decode is not None:
            own_decode.close()  # stops the decode thread now, also when compositing failed
    if expected != segment.stop:
        raise StitchError(f"segment {segment.index}: source ended at frame {expected}, "
                          f"expected frames [{segment.start}, {segment.stop})")
    return expected - segment.start


# Frames decoded ahead of the encoder in a background thread: PyAV releases the GIL in
# decode and colour conversion, so decoding overlaps compositing and encoding.
PREFETCH_FRAMES = 4
_DONE = object()


def prefetched(items: Iterator[Any], depth: int) -> Generator[Any, None, None]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead. Errors in
    the producer re-raise here; abandoning the consumer stops and closes the producer."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((_DONE, None))
        except BaseException as error:  # handed to the consumer
            buffer.put((_DONE, error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="stitch-decode", daemon=True)
    worker.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full buffer
            try:
                buffer.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()
