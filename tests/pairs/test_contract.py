"""The pairs contract without Ray: pseudo-labels, lossless frame archives, the index reader."""

from __future__ import annotations

import io

import numpy as np
import pytest

from clear_ray.pairs import COLUMN_NAMES, index_schema, pseudo_labels, read_index, read_pair
from clear_ray.pairs.frame_archive import decode_frames, encode_frames


def test_pseudo_labels_follow_clear_stage1_rule():
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    subtitled = clean.copy()
    subtitled[0, 10:14, 5:45] = 255  # a text bar: 160 of 2000 pixels (8 %)
    subtitled[1] = np.clip(clean[1].astype(int) + 1, 0, 255)  # codec-like noise everywhere, no text
    subtitled[2, 0, 0] = 255  # one changed pixel: 0.05 % < 0.12 %
    mask, keep = pseudo_labels(clean, subtitled)
    assert mask.shape == (3, 40, 50) and mask.dtype == bool and keep.tolist() == [True, False, False]

    # Frame 0 by hand: diff on [-1, 1] values, threshold max(mean + std, 0.01).
    diff = np.abs(subtitled[0] / 127.5 - clean[0] / 127.5).mean(axis=-1)
    expected = diff > max(diff.mean() + diff.std(), 0.01)
    assert np.array_equal(mask[0], expected)
    truth = np.zeros((40, 50), bool)
    truth[10:14, 5:45] = True
    assert (mask[0] & ~truth).sum() == 0 and (mask[0] & truth).sum() > 0.9 * truth.sum()
    # Uniform +1 noise: diff 0.0078 everywhere, under the 0.01 floor -> nothing.
    assert not mask[1].any()


def test_frame_archive_is_lossless_reads_only_requested_frames_and_is_byte_stable():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (5, 9, 11, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (5, 9, 11), dtype=np.uint8)
    for frames in (rgb, grey):
        data = encode_frames(frames)
        assert encode_frames(frames) == data  # same pixels, same bytes
        back, indices = decode_frames(io.BytesIO(data))
        assert indices == list(range(5)) and np.array_equal(back, frames)
        some, indices = decode_frames(io.BytesIO(data), [4, 1])
        assert indices == [4, 1] and np.array_equal(some, frames[[4, 1]])
    with pytest.raises(IndexError, match="outside the 5 frames"):
        decode_frames(io.BytesIO(encode_frames(rgb)), [5])


def test_index_schema_and_a_clear_error_for_a_missing_index(tmp_path):
    schema = index_schema()
    assert tuple(schema.names) == COLUMN_NAMES
    assert str(schema.field("frames").type) == "int64" and str(schema.field("fps").type) == "double"
    with pytest.raises(FileNotFoundError, match="make-pairs"):
        read_index(str(tmp_path))


def test_read_pair_on_a_hand_made_shard(tmp_path):
    rng = np.random.default_rng(2)
    clean = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    subtitled = clean.copy()
    subtitled[:, 2:4] = 250
    alpha = np.zeros((5, 8, 8), np.uint8)
    alpha[:, 2:4] = 255
    for name, array in (("c", clean), ("s", subtitled), ("a", alpha)):
        (tmp_path / f"{name}.zip").write_bytes(encode_frames(array))
    row = {"clean_uri": str(tmp_path / "c.zip"), "subtitled_uri": str(tmp_path / "s.zip"),
           "alpha_uri": str(tmp_path / "a.zip"), "start_frame": 0, "frames": 5}
    pair = read_pair(row, [3, 0])
    assert pair.frame_indices == [3, 0]
    assert np.array_equal(pair.clean_thwc_u8, clean[[3, 0]]) and np.array_equal(pair.alpha_thw_u8, alpha[[3, 0]])
    assert np.array_equal(pair.subtitled_thwc_u8, subtitled[[3, 0]])
    assert read_pair({**row, "alpha_uri": None}).alpha_thw_u8 is None
