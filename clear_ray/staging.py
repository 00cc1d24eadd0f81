"""Durable, compact, lossless staging of one chunk's removal result.

A staged chunk holds a remover's result for the chunk's REAL frames only (reflection
padding dropped): per frame, the bounding box of the non-zero mask, the mask quantised to
uint8 inside that box (0 stays exactly 0, any non-zero value stays >= 1 so the touched
region is preserved exactly), and the replaced pixels only where the mask is non-zero.
An identity result is a few hundred bytes; a subtitle band costs roughly its own area.

File layout (format version 1)::

    b"CRSTAGE\\0" | uint32 LE version | uint32 LE header length | header JSON | body
    body = boxes (int32 T x 4, raw) | zlib(mask crops) | zlib(byte-delta of pixels)

The header names the chunk, the frame size, each body section's offset and length, the
body's CRC-32 and the ``producer``: the fingerprint of the remover instance that computed
it (see ``Remover.fingerprint``), so a chunk computed differently (fp32 on a CPU, bf16 on
a GPU) is recomputed rather than mixed into one video. Files are written atomically (temp name + rename locally, one object
PUT on S3 and other object stores): a file under its final name is complete.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from clear_ray.chunking import Chunk, real_frame_slice
from clear_ray.removers.base import RemovalResult

FORMAT_VERSION = 1
_MAGIC = b"CRSTAGE\x00"
_PREFIX = struct.Struct("<II")  # version, header length
_SUFFIX = ".crs"
_NAME_RE = re.compile(r"^chunk-(\d{6,})" + re.escape(_SUFFIX) + r"$")
_ZLIB_LEVEL = 1  # level 6 saves ~5 % more for 3x the time on natural pixels


class StagingError(ValueError):
    """A staged chunk that cannot be written or read back (one-line reason)."""


@dataclass(frozen=True)
class StagedFrame:
    """One real frame of a staged chunk. ``box`` = (y0, y1, x0, x1) of the non-zero mask,
    empty (y0 == y1) when the remover touched nothing."""

    box: tuple[int, int, int, int]
    mask_hw_u8: np.ndarray  # (y1-y0, x1-x0) uint8; 0 = source pixel, 255 = replaced
    pixels_mc_u8: np.ndarray  # (M, 3) uint8: replaced RGB where mask_hw_u8 > 0, raster order

    @property
    def empty(self) -> bool:
        return self.box[0] == self.box[1]


@dataclass(frozen=True)
class StagedChunk:
    chunk: Chunk
    height: int
    width: int
    frames: tuple[StagedFrame, ...]  # one per real frame, source frames [start, stop)
    producer: str = ""  # fingerprint of the remover instance that computed it ("" = unrecorded)

    def frame(self, source_index: int) -> StagedFrame:
        if not self.chunk.start <= source_index < self.chunk.stop:
            raise IndexError(f"frame {source_index} is outside chunk {self.chunk.index} "
                             f"[{self.chunk.start}, {self.chunk.stop})")
        return self.frames[source_index - self.chunk.start]

    @property
    def nbytes(self) -> int:
        return sum(f.mask_hw_u8.nbytes + f.pixels_mc_u8.nbytes for f in self.frames)


def quantize_mask(mask_f32: np.ndarray) -> np.ndarray:
    """Soft mask in [0, 1] -> uint8 0..255; exactly 0 stays 0 and anything above 0 is >= 1."""
    if not np.all(np.isfinite(mask_f32)) or mask_f32.min(initial=0.0) < 0 or mask_f32.max(initial=0.0) > 1:
        raise StagingError("mask values must be finite and within [0, 1]")
    scaled = np.rint(mask_f32 * np.float32(255.0))
    return np.where(mask_f32 > 0, np.maximum(scaled, 1), 0).astype(np.uint8)


def stage_result(chunk: Chunk, result: RemovalResult) -> StagedChunk:
    """The compact in-memory form of ``result`` restricted to the chunk's real frames."""
    frames_thwc_u8, mask_thw_f32 = result.frames_thwc_u8, result.mask_thw_f32
    if frames_thwc_u8.shape[0] != chunk.length:
        raise StagingError(f"chunk {chunk.index} has {chunk.length} frames but the result has "
                           f"{frames_thwc_u8.shape[0]}")
    real = real_frame_slice(chunk)
    height, width = result.frame_hw or frames_thwc_u8.shape[1:3]
    top, left = result.origin_yx  # boxes are kept in whole-frame coordinates
    staged = []
    for frame_hwc_u8, mask_hw_f32 in zip(frames_thwc_u8[real], mask_thw_f32[real]):
        # Box first, on the raw mask (NaN and negatives count as set and are then refused
        # by quantize_mask): untouched frames cost one pass over the mask and no arithmetic.
        set_hw = mask_hw_f32 != 0
        rows = np.flatnonzero(set_hw.any(axis=1))
        if rows.size == 0:
            staged.append(_empty_frame())
            continue
        cols = np.flatnonzero(set_hw[rows[0]:rows[-1] + 1].any(axis=0))
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        mask_crop = quantize_mask(mask_hw_f32[y0:y1, x0:x1])
        pixels = np.ascontiguousarray(frame_hwc_u8[y0:y1, x0:x1][mask_crop > 0])
        staged.append(StagedFrame((top + y0, top + y1, left + x0, left + x1), mask_crop, pixels))
    return StagedChunk(chunk=chunk, height=int(height), width=int(width), frames=tuple(staged))


def _empty_frame() -> StagedFrame:
    return StagedFrame((0, 0, 0, 0), np.zeros((0, 0), np.uint8), np.zeros((0, 3), np.uint8))


# --- bytes ----------------------------------------------------------------------------

def encode_staged_chunk(staged: StagedChunk) -> bytes:
    boxes = np.array([f.box for f in staged.frames], dtype=np.int32).reshape(-1, 4)
    masks = b"".join(f.mask_hw_u8.tobytes() for f in staged.frames)
    pixels_mc_u8 = np.concatenate([f.pixels_mc_u8 for f in staged.frames]) if staged.frames else \
        np.zeros((0, 3), np.uint8)
    # Neighbouring replaced pixels are alike: store byte differences (PNG's "Sub" filter),
    # which deflate packs ~1.5x tighter than raw RGB.
    delta_mc_u8 = np.diff(pixels_mc_u8, axis=0, prepend=np.zeros((1, 3), np.uint8))
    sections = [("boxes", boxes.astype("<i4").tobytes()),
                ("masks", zlib.compress(masks, _ZLIB_LEVEL)),
                ("pixels", zlib.compress(delta_mc_u8.tobytes(), _ZLIB_LEVEL))]
    offsets, body, position = {}, [], 0
    for name, blob in sections:
        offsets[name] = [position, len(blob)]
        body.append(blob)
        position += len(blob)
    body_bytes = b"".join(body)
    header = json.dumps({
        "format": "clear_ray.staged_chunk", "version": FORMAT_VERSION,
        "chunk": staged.chunk.to_dict(), "height": staged.height, "width": staged.width,
        "num_frames": len(staged.frames), "sections": offsets,
        "mask_bytes": len(masks), "pixel_count": int(pixels_mc_u8.shape[0]),
        "crc32": zlib.crc32(body_bytes), "producer": staged.producer,
    }, separators=(",", ":")).encode()
    return _MAGIC + _PREFIX.pack(FORMAT_VERSION, len(header)) + header + body_bytes


def decode_staged_chunk(data: bytes, *, name: str = "staged chunk") -> StagedChunk:
    head = len(_MAGIC) + _PREFIX.size
    if len(data) < head or data[:len(_MAGIC)] != _MAGIC:
        raise StagingError(f"{name}: not a clear_ray staged chunk")
    version, header_len = _PREFIX.unpack_from(data, len(_MAGIC))
    if version != FORMAT_VERSION:
        raise StagingError(f"{name}: staged chunk format version {version} is not supported "
                           f"(this clear_ray reads version {FORMAT_VERSION})")
    try:
        header: dict[str, Any] = json.loads(data[head:head + header_len])
        body = data[head + header_len:]
        intact = zlib.crc32(body) == int(header["crc32"])
    except (ValueError, KeyError, TypeError) as error:
        raise StagingError(f"{name}: corrupt header ({error!r})") from None
    if not intact:
        raise StagingError(f"{name}: checksum mismatch (truncated or corrupt)")

    def section(key: str) -> bytes:
        offset, length = header["sections"][key]
        return body[offset:offset + length]

    num_frames = int(header["num_frames"])
    boxes = np.frombuffer(section("boxes"), dtype="<i4").reshape(num_frames, 4)
    masks = np.frombuffer(zlib.decompress(section("masks")), dtype=np.uint8)
    delta_mc_u8 = np.frombuffer(zlib.decompress(section("pixels")), dtype=np.uint8).reshape(-1, 3)
    pixels_mc_u8 = np.cumsum(delta_mc_u8, axis=0, dtype=np.uint8)  # wraps mod 256: exact inverse
    if masks.size != header["mask_bytes"] or pixels_mc_u8.shape[0] != header["pixel_count"]:
        raise StagingError(f"{name}: section sizes disagree with the header")

    frames, mask_at, pixel_at = [], 0, 0
    for y0, y1, x0, x1 in boxes.tolist():
        if y0 == y1:
            frames.append(_empty_frame())
            continue
        size = (y1 - y0) * (x1 - x0)
        mask_crop = masks[mask_at:mask_at + size].reshape(y1 - y0, x1 - x0)
        count = int(np.count_nonzero(mask_crop))
        frames.append(StagedFrame((y0, y1, x0, x1), mask_crop, pixels_mc_u8[pixel_at:pixel_at + count]))
        mask_at, pixel_at = mask_at + size, pixel_at + count
    if mask_at != masks.size or pixel_at != pixels_mc_u8.shape[0]:
        raise StagingError(f"{name}: mask and pixel counts disagree")
    return StagedChunk(chunk=Chunk.from_dict(header["chunk"]), height=int(header["height"]),
                       width=int(header["width"]), frames=tuple(frames), producer=str(header.get("producer", "")))


# --- storage --------------------------------------------------------------------------

def _filesystem(uri: str, storage_options: Mapping[str, Any] | None):
    from clear_ray import storage

    # Fresh remote clients: a cached s3fs instance reused by a long-lived Ray worker can
    # answer from a listing made before other processes wrote or deleted chunks.
    return storage.filesystem(uri, dict(storage_options or {}))


def _is_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _join(dir_uri: str, name: str) -> str:
    return f"{dir_uri.rstrip('/')}/{name}"


def staged_chunk_uri(dir_uri: str, chunk_index: int) -> str:
    return _join(dir_uri, f"chunk-{chunk_index:06d}{_SUFFIX}")


def write_staged_chunk(dir_uri: str, chunk: Chunk, result: RemovalResult | StagedChunk, *,
                       storage_options: Mapping[str, Any] | None = None, producer: str = "") -> str:
    """Stage ``result`` for ``chunk`` under ``dir_uri`` atomically; returns its URI.
    ``producer`` is the computing remover's fingerprint (kept with the chunk)."""
    staged = result if isinstance(result, StagedChunk) else stage_result(chunk, result)
    if producer:
        staged = dataclasses.replace(staged, producer=producer)
    if staged.chunk != chunk:
        raise StagingError(f"staged result is for chunk {staged.chunk.index}, not {chunk.index}")
    data = encode_staged_chunk(staged)
    uri = staged_chunk_uri(dir_uri, chunk.index)
    fs, path = _filesystem(uri, storage_options)
    if _is_local(fs):
        directory, name = os.path.split(path)
        os.makedirs(directory, exist_ok=True)
        temp = os.path.join(directory, f".{name}.tmp-{uuid.uuid4().hex}")
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
    else:
        # One object write: an object store shows the key only once the upload completes.
        from clear_ray.storage import retry

        extra = {"chunksize": 1 << 30} if "s3" in _protocols(fs) else {}
        retry(fs.pipe_file, path, data, **extra, what=f"stage {uri}")
    return uri


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def read_staged_chunk(uri: str, *, storage_options: Mapping[str, Any] | None = None) -> StagedChunk:
    from clear_ray.storage import retry

    fs, path = _filesystem(uri, storage_options)
    try:
        data = retry(fs.cat_file, path, what=f"read {uri}")
    except FileNotFoundError:
        raise StagingError(f"{uri}: no staged chunk there") from None
    return decode_staged_chunk(data, name=uri)


def read_staged_producer(uri: str, *, storage_options: Mapping[str, Any] | None = None) -> str | None:
    """The ``producer`` of the staged chunk at ``uri`` from its header alone (two small
    range reads, not the body); None when no chunk is staged there."""
    from clear_ray.storage import retry

    fs, path = _filesystem(uri, storage_options)
    head = len(_MAGIC) + _PREFIX.size
    try:
        # Retried like every other storage call: an S3 restart while an actor checks a
        # chunk must not fail the chunk's video (a missing chunk is an answer, not retried).
        prefix = retry(fs.cat_file, path, start=0, end=head, what=f"read the header of {uri}")
        if len(prefix) < head or prefix[:len(_MAGIC)] != _MAGIC:
            raise StagingError(f"{uri}: not a clear_ray staged chunk")
        _, header_len = _PREFIX.unpack_from(prefix, len(_MAGIC))
        header = json.loads(retry(fs.cat_file, path, start=head, end=head + header_len,
                                  what=f"read the header of {uri}"))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as error:
        raise StagingError(f"{uri}: corrupt header ({error!r})") from None
    return str(header.get("producer", ""))


def list_staged_chunks(dir_uri: str, *, storage_options: Mapping[str, Any] | None = None) -> dict[int, str]:
    """Chunk index -> URI of every staged chunk under ``dir_uri`` (temp files ignored)."""
    fs, path = _filesystem(dir_uri, storage_options)
    from clear_ray.storage import retry

    fs.invalidate_cache(path)  # other processes (actors) write here: never trust a cached listing
    try:
        names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in retry(fs.ls, path, detail=False, what=f"list {dir_uri}")]
    except FileNotFoundError:
        return {}
    found = {}
    for name in names:
        match = _NAME_RE.match(name)
        if match:
            found[int(match.group(1))] = _join(dir_uri, name)
    return dict(sorted(found.items()))


def delete_staged_chunk(uri: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Remove one staged chunk; a missing one is not an error (releases may repeat)."""
    from clear_ray.storage import retry

    fs, path = _filesystem(uri, storage_options)
    try:
        retry(fs.rm_file, path, what=f"delete {uri}")
    except FileNotFoundError:
        pass


def delete_staged_dir(dir_uri: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Remove a video's whole staging directory (after its output is durable)."""
    from clear_ray.storage import remove_tree

    remove_tree(dir_uri, dict(storage_options or {}))

