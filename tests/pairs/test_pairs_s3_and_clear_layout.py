"""Pairs from real footage on the real S3 server; CLEAR's layout out (--export-clear-layout)
and back in (--from-pairs) with pseudo-label masks scored against the true alpha."""

from __future__ import annotations

import numpy as np
import pytest

from clear_ray.pairs import pseudo_labels, read_index, read_pair
from clear_ray.pairs.job import run_make_pairs
from tests.pairs.helpers import assert_alpha_is_the_difference, pairs_config


def _s3(s3_server) -> dict:
    return {"storage.endpoint_url": s3_server.endpoint_url, "storage.access_key_id": s3_server.access_key,
            "storage.secret_access_key": s3_server.secret_key, "storage.region": "us-east-1"}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


@pytest.mark.slow
def test_real_footage_to_s3_then_clear_layout_round_trip(ray_cluster, s3_server, s3_bucket, natural_clip, tmp_path):
    fs = s3_server.filesystem()
    fs.put_file(str(natural_clip), f"{s3_bucket}/clean/bikes.mp4")  # real footage, 640x272
    src, dst, export = f"{s3_bucket}/clean", f"{s3_bucket}/pairs", tmp_path / "clear_layout"
    config = pairs_config(src, dst, **_s3(s3_server), **{"windows.per_video": 3, "synthesis.text_free_fraction": 0.0,
                                                          "export_clear_layout": str(export), "seed": 0})
    summary = run_make_pairs(config)
    assert summary.exit_code == 0 and summary.pairs_written == 3

    options = config.storage.s3_storage_options()
    assert fs.exists(f"{dst}/index.parquet") and fs.ls(f"{dst}/_manifest")
    rows = read_index(dst, storage_options=options)
    assert len(rows) == 3 and all(r["clean_uri"].startswith(f"{s3_bucket}/pairs/shards/") for r in rows)
    # Every window is meant to have text; one can still fall into a gap between two cues.
    assert sum(bool(row["language"]) for row in rows) >= 2
    truth = {}
    for row in rows:
        assert (row["width"], row["height"], row["frames"]) == (640, 272, 17)
        pair = read_pair(row, storage_options=options)
        assert_alpha_is_the_difference(pair)
        truth[row["pair_id"]] = pair.alpha_thw_u8 > 0
        part = read_pair(row, [0, 8, 16], storage_options=options)  # ranged reads of three members
        assert np.array_equal(part.alpha_thw_u8, pair.alpha_thw_u8[[0, 8, 16]])

    # CLEAR's layout: clean/NAME.mp4 + subtitled/NAME_with_subtitle.mp4, one encoder setting for both.
    names = sorted(p.name for p in (export / "clean").iterdir())
    assert names == sorted(f"{r['pair_id']}.mp4" for r in rows)
    assert sorted(p.name for p in (export / "subtitled").iterdir()) == [n.replace(".mp4", "_with_subtitle.mp4")
                                                                       for n in names]

    # ... indexed back with --from-pairs: no alpha, pseudo-label masks that find the text.
    back = tmp_path / "from_pairs"
    summary = run_make_pairs(pairs_config(str(export), str(back), **{"from_pairs": True, "windows.per_video": 1}))
    assert summary.exit_code == 0
    pseudo_rows = read_index(str(back))
    assert len(pseudo_rows) == 3
    scores = []
    for row in pseudo_rows:
        true_mask = truth[row["source_uri"].rsplit("/", 1)[-1].removesuffix(".mp4")]
        if not true_mask.any():
            continue
        assert row["alpha_uri"] is None and row["mask_kind"] == "pseudo" and row["language"] == ""
        pair = read_pair(row)
        assert pair.alpha_thw_u8 is None and pair.clean_thwc_u8.shape == (17, 272, 640, 3)
        mask, keep = pseudo_labels(pair.clean_thwc_u8, pair.subtitled_thwc_u8)
        # Kept frames are the texted ones: every frame whose text is big enough is kept.
        assert not keep[~true_mask.any(axis=(1, 2))].any()
        scores.append(iou(mask[keep], true_mask[keep]))
    print(f"pseudo-label IoU against the true alpha (kept frames, per pair): {[round(float(s), 3) for s in scores]}")
    assert min(scores) > 0.5
