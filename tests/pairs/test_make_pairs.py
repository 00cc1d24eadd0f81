"""`make-pairs` on the real local Ray cluster: shards, index, exact alpha, bad inputs, resume,
determinism (issue #12's must-show, local part)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clear_ray.manifest import read_manifest_table
from clear_ray.media import decode
from clear_ray.pairs import COLUMN_NAMES, read_index, read_pair
from clear_ray.pairs.job import run_make_pairs
from tests.pairs.helpers import assert_alpha_is_the_difference, pairs_config, shard_files


@pytest.fixture
def clean_dir(make_clip, tmp_path) -> Path:
    src = tmp_path / "clean"
    src.mkdir()
    make_clip("a.mp4", frames=40, width=160, height=120).rename(src / "a.mp4")
    make_clip("b.mkv", frames=30, width=128, height=96, fps="30000/1001", pattern="testsrc").rename(src / "b.mkv")
    make_clip("short.mp4", frames=9, width=160, height=120).rename(src / "short.mp4")
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    return src


def test_pairs_index_exact_alpha_bad_inputs_resume_and_same_seed(ray_cluster, clean_dir, tmp_path):
    dst = tmp_path / "pairs"
    summary = run_make_pairs(pairs_config(str(clean_dir), str(dst)))

    # Bad clean inputs fail alone, each with one line; the others finish.
    status = {row.rel_path: row for row in summary.rows}
    assert {k: v.status for k, v in status.items()} == {
        "a.mp4": "done", "b.mkv": "done", "short.mp4": "failed", "broken.mp4": "failed"}
    assert "too short for one window: 9 frames < 17" in status["short.mp4"].error
    assert status["short.mp4"].error_kind == "input" and status["broken.mp4"].error_kind == "input"
    assert all("\n" not in row.error for row in summary.rows if row.error)
    assert summary.exit_code == 1 and summary.pairs_written == 4

    # The index: one row per pair, contract columns and types.
    rows = read_index(str(dst))
    assert len(rows) == 4 and tuple(rows[0]) == COLUMN_NAMES
    for row in rows:
        assert row["frames"] == 17 and row["split"] == "train" and row["mask_kind"] == "alpha"
        assert isinstance(row["fps"], float) and isinstance(row["seed"], int)
        assert (row["width"], row["height"]) == ((160, 120) if row["source_uri"].endswith("a.mp4") else (128, 96))
        pair = read_pair(row)
        # Clean = the source window exactly (lossless shards), alpha = exactly where text went.
        source = decode(row["source_uri"], row["start_frame"], row["start_frame"] + 17)
        assert np.array_equal(pair.clean_thwc_u8, source)
        assert_alpha_is_the_difference(pair)
        assert row["text_fraction"] == pytest.approx(np.count_nonzero(pair.alpha_thw_u8) / pair.alpha_thw_u8.size)
        assert (row["language"] == "") == (row["text_fraction"] == 0) == (row["style"] == "")
    assert {r["start_frame"] for r in rows if r["source_uri"].endswith("a.mp4")} == {0, 23}
    some = read_pair(rows[0], [16, 3])
    assert some.frame_indices == [16, 3] and some.clean_thwc_u8.shape[0] == 2

    # A second run finds everything done: nothing rewritten, same index.
    before = shard_files(dst)
    again = run_make_pairs(pairs_config(str(clean_dir), str(dst)))
    assert again.pairs_written == 0 and shard_files(dst) == before
    assert {r.rel_path: r.status for r in again.rows} == {
        "a.mp4": "skipped", "b.mkv": "skipped", "short.mp4": "quarantined", "broken.mp4": "quarantined"}
    assert read_index(str(dst)) == rows
    manifest = read_manifest_table(str(dst)).to_pylist()
    assert len(manifest) == 8 and {m["backend"] for m in manifest} == {"make-pairs"}

    # Same seed elsewhere: byte-identical shards; another seed: other pairs.
    twin = tmp_path / "twin"
    run_make_pairs(pairs_config(str(clean_dir), str(twin)))
    assert sorted(p.name for p in (twin / "shards").iterdir()) == sorted(r["pair_id"] for r in rows)
    for row in rows:
        for name in ("clean.zip", "subtitled.zip", "alpha.zip"):
            assert (twin / "shards" / row["pair_id"] / name).read_bytes() == \
                (dst / "shards" / row["pair_id"] / name).read_bytes()
