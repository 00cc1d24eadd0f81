"""Chunk plan, padding indices, blend weights and segments: properties over many videos."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clear_ray.chunking import (
    Chunk,
    Segment,
    blend_weights,
    chunk_source_indices,
    chunks_releasable,
    last_segment_needing,
    plan_chunks,
    plan_segments,
    real_frame_slice,
    segments_ready,
    smallest_4n_plus_1,
)


@st.composite
def plans(draw):
    num_frames = draw(st.integers(1, 5000))
    chunk_size = draw(st.sampled_from([5, 9, 21, 41, 81]))
    overlap = draw(st.integers(0, chunk_size - 1))
    return num_frames, chunk_size, overlap


@settings(max_examples=300, deadline=None)
@given(plans(), st.sampled_from(["cosine", "linear"]))
def test_plan_properties(plan, kind):
    num_frames, chunk_size, overlap = plan
    chunks = plan_chunks(num_frames, chunk_size, overlap)

    # Every chunk is 4n+1 long; full-size whenever the video is at least one chunk long.
    expected_length = chunk_size if num_frames >= chunk_size else smallest_4n_plus_1(num_frames)
    for chunk in chunks:
        assert (chunk.length - 1) % 4 == 0
        assert chunk.length == expected_length
        assert 0 <= chunk.start < chunk.stop <= num_frames

    # Every frame covered; the first starts at 0 and the last ends at N.
    covered = np.zeros(num_frames, dtype=bool)
    for chunk in chunks:
        covered[chunk.start:chunk.stop] = True
    assert covered.all()
    assert chunks[0].start == 0 and chunks[-1].stop == num_frames
    assert [c.index for c in chunks] == list(range(len(chunks)))

    # Overlaps at least the configured one, recorded on both sides, spread evenly.
    for prev, nxt in zip(chunks, chunks[1:]):
        shared = prev.stop - nxt.start
        assert shared >= overlap
        assert prev.overlap_after == shared == nxt.overlap_before
    steps = np.diff([c.start for c in chunks])
    if len(steps):
        assert steps.max() - steps.min() <= 1
        assert steps.min() >= 1
    # ...and no more chunks than needed: one fewer could not keep the overlap.
    if len(chunks) > 1:
        assert (num_frames - chunk_size) > (len(chunks) - 2) * (chunk_size - overlap)

    # Padding indices stay inside the chunk's real range; real frames map to themselves.
    for chunk in chunks:
        indices = chunk_source_indices(chunk)
        assert indices.shape == (chunk.length,)
        assert indices.min() >= chunk.start and indices.max() < chunk.stop
        assert np.array_equal(indices[real_frame_slice(chunk)], np.arange(chunk.start, chunk.stop))

    # Weights: one per real frame, in (0, 1], summing to 1 for every frame.
    weights = blend_weights(chunks, num_frames, kind)
    total = np.zeros(num_frames)
    for chunk, weight in zip(chunks, weights):
        assert weight.shape == (chunk.num_real,)
        assert np.all(weight > 0) and np.all(weight <= 1 + 1e-12)
        total[chunk.start:chunk.stop] += weight
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-6)

    # Segments partition the video and list exactly the chunks intersecting them.
    segments = plan_segments(chunks, num_frames)
    assert [s.start for s in segments] == [c.start for c in chunks]
    assert segments[-1].stop == num_frames
    for seg, nxt in zip(segments, segments[1:]):
        assert seg.stop == nxt.start and seg.start < seg.stop
    for seg in segments:
        expected = tuple(c.index for c in chunks if c.start < seg.stop and c.stop > seg.start)
        assert seg.chunk_indices == expected

    # Grouped into pieces of >= min_frames (fewer IDR frames), still a partition at chunk starts.
    min_frames = 250
    grouped = plan_segments(chunks, num_frames, min_frames)
    assert grouped[0].start == 0 and grouped[-1].stop == num_frames
    assert {s.start for s in grouped} <= {c.start for c in chunks}
    for seg, nxt in zip(grouped, grouped[1:]):
        assert seg.stop == nxt.start
    assert all(s.stop - s.start >= min_frames for s in grouped[:-1])
    assert 2 * (grouped[-1].stop - grouped[-1].start) >= min_frames or len(grouped) == 1
    # The last piece is at most as long as a piece plus half of one (a short tail joined).
    assert grouped[-1].stop - grouped[-1].start < min_frames * 3 // 2 + chunk_size or len(grouped) == 1
    for seg in grouped:
        assert seg.chunk_indices == tuple(c.index for c in chunks if c.start < seg.stop and c.stop > seg.start)


def test_short_videos_are_one_reflection_padded_chunk():
    (one,) = plan_chunks(1, 81, 16)
    assert (one.length, one.pad_after) == (1, 0)
    assert chunk_source_indices(one).tolist() == [0]

    (two,) = plan_chunks(2, 81, 16)
    assert two.length == 5
    assert chunk_source_indices(two).tolist() == [0, 1, 0, 1, 0]

    (almost,) = plan_chunks(80, 81, 16)
    assert (almost.length, almost.pad_after) == (81, 1)
    assert chunk_source_indices(almost)[-3:].tolist() == [78, 79, 78]

    padded_before = Chunk(index=0, start=10, stop=13, pad_before=2, pad_after=0)
    assert chunk_source_indices(padded_before).tolist() == [12, 11, 10, 11, 12]


def test_exact_fit_and_one_frame_more():
    assert plan_chunks(81, 81, 16) == [Chunk(0, 0, 81)]
    two = plan_chunks(82, 81, 16)
    assert [(c.start, c.stop) for c in two] == [(0, 81), (1, 82)]
    assert two[0].overlap_after == 80


def test_extra_overlap_is_spread_not_piled_on_the_tail():
    chunks = plan_chunks(1000, 81, 16)
    overlaps = [c.overlap_after for c in chunks[:-1]]
    assert min(overlaps) >= 16
    assert max(overlaps) - min(overlaps) <= 1


def test_three_way_overlap_weights():
    # 150 frames, 81/16: three windows at 0, 35, 69; frames 69..80 lie in all three.
    chunks = plan_chunks(150, 81, 16)
    assert [c.start for c in chunks] == [0, 35, 69]
    weights = blend_weights(chunks, 150, "cosine")
    frame = 75
    per_chunk = [w[frame - c.start] for c, w in zip(chunks, weights)]
    assert all(p > 0 for p in per_chunk)
    assert sum(per_chunk) == pytest.approx(1.0, abs=1e-12)
    segments = plan_segments(chunks, 150)
    assert [s.chunk_indices for s in segments] == [(0,), (0, 1), (0, 1, 2)]


def test_two_way_crossfade_shape():
    chunks = plan_chunks(9 + 5, 9, 4)
    assert [c.start for c in chunks] == [0, 5]
    linear = blend_weights(chunks, 14, "linear")
    # Frames 5..8 are shared; the first chunk fades out 4/5, 3/5, 2/5, 1/5.
    np.testing.assert_allclose(linear[0], [1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    np.testing.assert_allclose(linear[1], [0.2, 0.4, 0.6, 0.8, 1, 1, 1, 1, 1])
    cosine = blend_weights(chunks, 14, "cosine")
    assert cosine[0][5] > linear[0][5]  # raised cosine stays high longer


def test_records_travel_as_plain_ints():
    chunks = plan_chunks(200, 21, 4)
    for chunk in chunks:
        row = json.loads(json.dumps(chunk.to_dict()))
        assert all(type(v) is int for v in chunk.to_dict().values())
        assert Chunk.from_dict(row) == chunk
    for segment in plan_segments(chunks, 200):
        assert Segment.from_dict(json.loads(json.dumps(segment.to_dict()))) == segment


def test_release_bookkeeping():
    chunks = plan_chunks(200, 21, 4)
    segments = plan_segments(chunks, 200)
    last = last_segment_needing(segments)
    assert chunks_releasable(segments, []) == set()
    # Done in any order: a chunk is free exactly when all its readers are done.
    done = {0, 2}
    free = chunks_releasable(segments, done)
    for chunk in chunks:
        readers = {s.index for s in segments if chunk.index in s.chunk_indices}
        assert (chunk.index in free) == readers.issubset(done)
    # In order: after segment k, the chunks whose last reader is k become free.
    for k in range(len(segments)):
        newly = chunks_releasable(segments, range(k + 1)) - chunks_releasable(segments, range(k))
        assert newly == {c for c, s in last.items() if s == k}
    assert chunks_releasable(segments, range(len(segments))) == {c.index for c in chunks}
    assert segments_ready(segments, []) == []
    # Segment 1 starts inside chunk 0, so it needs chunks 0 and 1; segment 2 needs 2 too.
    assert segments_ready(segments, [0]) == [0]
    assert segments_ready(segments, [0, 1]) == [0, 1]
    assert segments_ready(segments, [0, 2]) == [0]


@pytest.mark.parametrize("args, message", [
    ((0, 81, 16), "num_frames"),
    ((10, 80, 16), r"4n\+1"),
    ((10, 81, 81), "overlap"),
    ((10, 81, -1), "overlap"),
])
def test_bad_plan_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        plan_chunks(*args)


def test_bad_blend_kind():
    with pytest.raises(ValueError, match="cosine"):
        blend_weights(plan_chunks(30, 9, 4), 30, "square")  # type: ignore[arg-type]
