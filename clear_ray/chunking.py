"""Chunk plan, reflection padding, blend weights and output segments. Pure numpy.

A video of N frames is cut into overlapping windows ("chunks") of exactly ``4n+1`` frames,
the temporal rule of the Wan VAE. Chunk starts are spread evenly over the video so that
every overlap is at least the configured one and the extra overlap is shared by all
neighbours instead of piling up at the tail. Videos shorter than one chunk become one
chunk reflection-padded to the smallest ``4n+1`` length; the padded frames are dropped
when the chunk is staged.

Segments partition the output: segment k holds frames ``[start_k, start_{k+1})`` and is
encoded as an independent piece once every chunk intersecting it is staged.
"""

from __future__ import annotations

import bisect

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np

BlendKind = Literal["cosine", "linear"]


@dataclass(frozen=True)
class Chunk:
    """One model window. ``[start, stop)`` are its real source frames (stop exclusive);
    ``pad_before``/``pad_after`` reflection-padded frames complete it to ``4n+1``.
    ``overlap_before``/``overlap_after``: real frames shared with the previous/next chunk."""

    index: int
    start: int
    stop: int
    pad_before: int = 0
    pad_after: int = 0
    overlap_before: int = 0
    overlap_after: int = 0

    @property
    def num_real(self) -> int:
        return self.stop - self.start

    @property
    def length(self) -> int:
        """Frames fed to the remover, padding included (always 4n+1)."""
        return self.pad_before + self.num_real + self.pad_after

    def to_dict(self) -> dict[str, int]:
        return {key: int(value) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> "Chunk":
        return cls(**{name: int(row[name]) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Segment:
    """Output frames ``[start, stop)``, encoded as one piece; needs ``chunk_indices``."""

    index: int
    start: int
    stop: int
    chunk_indices: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"index": int(self.index), "start": int(self.start), "stop": int(self.stop),
                "chunk_indices": [int(i) for i in self.chunk_indices]}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> "Segment":
        return cls(index=int(row["index"]), start=int(row["start"]), stop=int(row["stop"]),
                   chunk_indices=tuple(int(i) for i in row["chunk_indices"]))


def is_4n_plus_1(length: int) -> bool:
    return length >= 1 and (length - 1) % 4 == 0


def smallest_4n_plus_1(at_least: int) -> int:
    return 1 + 4 * max(0, -(-(at_least - 1) // 4))


def plan_chunks(num_frames: int, chunk_size: int = 81, overlap: int = 16) -> list[Chunk]:
    """Cover ``[0, num_frames)`` with 4n+1-frame chunks overlapping by >= ``overlap``."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not is_4n_plus_1(chunk_size):
        raise ValueError(f"chunk_size must be 4n+1 (e.g. 81), got {chunk_size}")
    if not 0 <= overlap < chunk_size:
        raise ValueError(f"overlap must be in [0, chunk_size={chunk_size}), got {overlap}")

    if num_frames < chunk_size:
        padded = smallest_4n_plus_1(num_frames)
        return [Chunk(index=0, start=0, stop=num_frames, pad_after=padded - num_frames)]

    # The fewest windows whose even spacing keeps every step <= chunk_size - overlap.
    span = num_frames - chunk_size
    max_step = chunk_size - overlap
    num_chunks = 1 if span == 0 else 1 + -(-span // max_step)
    if num_chunks == 1:
        starts = [0]
    else:
        # Integer rounding of k*span/(num_chunks-1): consecutive steps differ by at most
        # one frame, and none exceeds ceil(span/(num_chunks-1)) <= max_step.
        gaps = num_chunks - 1
        starts = [(k * span + gaps // 2) // gaps for k in range(num_chunks)]
    chunks = []
    for k, start in enumerate(starts):
        before = starts[k - 1] + chunk_size - start if k > 0 else 0
        after = start + chunk_size - starts[k + 1] if k + 1 < num_chunks else 0
        chunks.append(Chunk(index=k, start=start, stop=start + chunk_size,
                            overlap_before=before, overlap_after=after))
    return chunks


def reflect_indices(positions: np.ndarray, length: int) -> np.ndarray:
    """Map positions on an infinite line onto ``[0, length)`` by mirror reflection about the
    end frames (numpy's "reflect" mode: the edge frame is not repeated)."""
    if length == 1:
        return np.zeros_like(positions)
    period = 2 * (length - 1)
    folded = np.mod(positions, period)
    return np.where(folded < length, folded, period - folded)


def chunk_source_indices(chunk: Chunk) -> np.ndarray:
    """Source frame index for each of the chunk's ``length`` frames, padding included.

    The actor decodes ``[start, stop)`` once and gathers ``frames[idx - start]``."""
    positions = np.arange(-chunk.pad_before, chunk.num_real + chunk.pad_after, dtype=np.int64)
    return chunk.start + reflect_indices(positions, chunk.num_real)


def real_frame_slice(chunk: Chunk) -> slice:
    """The positions of the chunk's real frames within its padded window."""
    return slice(chunk.pad_before, chunk.pad_before + chunk.num_real)


def _ramp(length: int, kind: BlendKind) -> np.ndarray:
    """Rising ramp strictly inside (0, 1); ``ramp + ramp[::-1] == 1`` elementwise, so a
    plain two-way cross-fade needs no normalisation."""
    fraction = np.arange(1, length + 1, dtype=np.float64) / (length + 1)
    if kind == "linear":
        return fraction
    if kind == "cosine":
        return 0.5 - 0.5 * np.cos(np.pi * fraction)
    raise ValueError(f"blend kind must be 'cosine' or 'linear', got {kind!r}")


def blend_weights(chunks: Sequence[Chunk], num_frames: int, kind: BlendKind = "cosine") -> list[np.ndarray]:
    """Per chunk, one float64 weight per real frame, so that for every frame the weights
    of all chunks covering it sum to 1.

    Each chunk ramps up across its overlap with the previous chunk and down across its
    overlap with the next; with even spacing a chunk can also overlap the one after next
    (3-way overlaps), so the raw ramps are normalised per frame."""
    raw: list[np.ndarray] = []
    for k, chunk in enumerate(chunks):
        weight = np.ones(chunk.num_real, dtype=np.float64)
        if k > 0 and chunk.overlap_before > 0:
            weight[:chunk.overlap_before] *= _ramp(chunk.overlap_before, kind)
        if k + 1 < len(chunks) and chunk.overlap_after > 0:
            weight[chunk.num_real - chunk.overlap_after:] *= _ramp(chunk.overlap_after, kind)[::-1]
        raw.append(weight)
    total = np.zeros(num_frames, dtype=np.float64)
    for chunk, weight in zip(chunks, raw):
        total[chunk.start:chunk.stop] += weight
    if np.any(total <= 0):
        missing = int(np.flatnonzero(total <= 0)[0])
        raise ValueError(f"frame {missing} of {num_frames} is covered by no chunk")
    return [weight / total[chunk.start:chunk.stop] for chunk, weight in zip(chunks, raw)]


def plan_segments(chunks: Sequence[Chunk], num_frames: int, min_frames: int = 1) -> list[Segment]:
    """Partition ``[0, num_frames)`` into segments that start at chunk starts and hold at
    least ``min_frames`` frames, except the last, which holds at least half as many (or
    the whole video), each with the indices of every chunk that intersects it.

    Every segment is encoded on its own and begins with an IDR frame: one per chunk stride
    (~2.6 s) costs ~13% bitrate at the same quality, so the job groups strides into
    pieces of ~10 s (``chunking.segment_frames``)."""
    if min_frames < 1:
        raise ValueError(f"min_frames must be >= 1, got {min_frames}")
    # Boundaries: chunk starts, taken greedily once a piece holds min_frames. Only a tail
    # shorter than half a piece joins the piece before it: the last segment can start
    # only once the video's last chunk is removed, so it sits on the job's critical path,
    # and a joined tail up to twice the others' length was what a video waited for last.
    bounds = [0]
    for chunk in chunks[1:]:
        if chunk.start - bounds[-1] >= min_frames:
            bounds.append(chunk.start)
    if len(bounds) > 1 and 2 * (num_frames - bounds[-1]) < min_frames:
        bounds.pop()
    bounds.append(num_frames)
    # Starts and stops both increase with the chunk index, so the chunks intersecting
    # [a, b) are one contiguous run: found by bisection (a 2-hour film has ~2,700 chunks).
    starts = [c.start for c in chunks]
    stops = [c.stop for c in chunks]
    segments = []
    for k, (start, stop) in enumerate(zip(bounds, bounds[1:])):
        first = bisect.bisect_right(stops, start)
        last = bisect.bisect_left(starts, stop)
        needed = tuple(chunks[j].index for j in range(first, last))
        segments.append(Segment(index=k, start=start, stop=stop, chunk_indices=needed))
    return segments


def last_segment_needing(segments: Sequence[Segment]) -> dict[int, int]:
    """Chunk index -> index of the last segment that reads it (for in-order stitching)."""
    last: dict[int, int] = {}
    for segment in segments:
        for chunk_index in segment.chunk_indices:
            last[chunk_index] = max(last.get(chunk_index, -1), segment.index)
    return last


def chunks_releasable(segments: Sequence[Segment], done_segments: Iterable[int]) -> set[int]:
    """Chunks whose every reading segment is in ``done_segments`` (in any order): their
    staged results may be deleted."""
    done = set(done_segments)
    needed_by: dict[int, set[int]] = {}
    for segment in segments:
        for chunk_index in segment.chunk_indices:
            needed_by.setdefault(chunk_index, set()).add(segment.index)
    return {chunk_index for chunk_index, readers in needed_by.items() if readers <= done}


def segments_ready(segments: Sequence[Segment], staged_chunks: Iterable[int]) -> list[int]:
    """Indices of segments whose chunks are all in ``staged_chunks``."""
    staged = set(staged_chunks)
    return [segment.index for segment in segments if staged.issuperset(segment.chunk_indices)]
