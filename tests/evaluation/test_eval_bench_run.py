"""`clear-ray bench run`: one table with the input and oracle reference rows, JSON and CSV."""

from __future__ import annotations

import csv
import json
import shutil
import sys

import pytest

from clear_ray.cli import main
from clear_ray.evaluation.bench import INPUT_ROW, ORACLE_ROW, run_bench


@pytest.fixture(scope="module")
def alexnet_weights(tmp_path_factory):
    """A real torchvision AlexNet state dict file (random init: nothing may be downloaded)."""
    import torch
    import torchvision

    path = tmp_path_factory.mktemp("weights") / "alexnet.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


def test_reference_rows_are_scored_and_a_missing_pipeline_is_reported(tiny_bench, tmp_path, monkeypatch, capsys,
                                                                       alexnet_weights, ray_cluster):
    monkeypatch.setitem(sys.modules, "clear_ray.pipeline", None)  # as if it had not landed
    out = tmp_path / "report.json"
    code = main(["bench", "run", str(tiny_bench), "--backend", "lite", "--split", "test", "--out", str(out),
                 "--lpips-weights", str(alexnet_weights), "--no-cache"])
    captured = capsys.readouterr()
    assert code == 1 and "pipeline is not available" in captured.err
    # No DISTS/VFID weights: one note, not an error.
    assert "note: DISTS, VFID not computed (no local weights given; nothing is downloaded)" in captured.err
    table = captured.out
    assert "PSNRtxt" in table and "TWE" in table
    lines = [line.split() for line in table.splitlines()]
    rows = {(cells[0], cells[1]): cells for cells in lines if cells and cells[0] in (INPUT_ROW, ORACLE_ROW, "lite")}
    assert {("input", "all"), ("oracle-telea", "all"), ("lite", "all"), ("input", "none")} <= rows.keys()
    assert rows[("lite", "all")][3:] == ["n/a"] * (len(rows[("lite", "all")]) - 3)
    assert rows[("input", "none")][3] == "100.00"  # untouched text-free clip: the PSNR cap

    report = json.loads(out.read_text())
    by_row = {(r["method"], r["language"]): r for r in report["rows"]}
    text_input, text_oracle = by_row[("input", "all")], by_row[("oracle-telea", "all")]
    # Inpainting with the true mask must beat doing nothing inside the text, and must
    # not touch anything outside it.
    assert text_oracle["psnr_text"] > text_input["psnr_text"] + 3
    assert text_oracle["psnr_rest"] == pytest.approx(text_input["psnr_rest"], abs=0.05)
    assert text_oracle["mask_precision"] == 1.0 and text_oracle["mask_recall"] == 1.0
    assert text_input["mask_precision"] is None and text_input["dists"] is None and text_input["vfid"] is None
    assert text_input["lpips"] > 0 and by_row[("input", "none")]["lpips"] == 0.0  # untouched = identical
    assert by_row[("lite", "all")]["lpips"] is None
    assert len(report["clips"]) == 9 and report["notes"]
    with out.with_suffix(".csv").open() as handle:
        csv_rows = list(csv.DictReader(handle))
    assert len(csv_rows) == len(report["rows"]) and csv_rows[0]["vfid"] == "n/a"


def test_bad_weights_and_missing_sets_are_one_line_errors(tiny_bench, tmp_path, capsys, ray_cluster):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not weights")
    assert main(["bench", "run", str(tiny_bench), "--backend", "identity", "--lpips-weights", str(junk)]) == 2
    assert main(["bench", "run", str(tiny_bench), "--backend", "identity", "--lpips-weights",
                 str(tmp_path / "absent.pth")]) == 2
    assert main(["bench", "run", str(tiny_bench), "--backend", "identity", "--dists-weights", str(junk)]) == 2
    assert main(["bench", "run", str(tiny_bench), "--backend", "identity", "--vfid-weights", str(junk)]) == 2
    assert main(["bench", "run", str(tmp_path), "--backend", "identity"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 5, errors
    assert "cannot read" in errors[0] and "--lpips-weights: " in errors[1] and "not a file" in errors[1]
    assert "DISTS needs both" in errors[2]
    assert "neither a TorchScript module nor" in errors[3] or "cannot read" in errors[3]
    assert "bench make" in errors[4]


def test_lpips_scorer_with_local_weights(alexnet_weights, tmp_path):
    import numpy as np
    import torch

    from clear_ray.evaluation.perceptual import LpipsScorer, WeightsError

    scorer = LpipsScorer(alexnet_weights)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    assert scorer.score(frames, frames) == 0.0
    assert scorer.score(frames, 255 - frames) > scorer.score(frames, np.clip(frames.astype(int) + 8, 0, 255)
                                                             .astype(np.uint8)) > 0
    wrong = tmp_path / "wrong.pth"
    torch.save({"classifier.1.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(WeightsError, match="not a torchvision AlexNet"):
        LpipsScorer(wrong)


@pytest.mark.slow
def test_identity_then_lite_through_the_real_pipeline(tiny_bench, tmp_path, ray_cluster):
    """identity, then lite on the same set: the second run scores only lite's rows (the
    reference rows come from the cache the first run wrote) and says so per language."""
    bench = tmp_path / "set"
    shutil.copytree(tiny_bench, bench)
    report = run_bench(bench, "identity", "test", work_dir=tmp_path, log=lambda line: None)
    assert report.backend_scored, report.notes
    assert (report.reference_computed, report.reference_cached) == (3, 0)
    by_row = {(r["method"], r["language"]): r for r in report.rows}
    identity, nothing = by_row[("identity", "all")], by_row[("input", "all")]
    # identity replaces nothing: only the output re-encode separates it from the input
    assert identity["psnr_text"] == pytest.approx(nothing["psnr_text"], abs=1.0)
    assert identity["seconds_per_frame"] > 0
    # Its mask (recovered in the scoring worker) is empty: no text found, nothing marked.
    assert identity["mask_recall"] == 0.0 and identity["mask_fpr"] == 0.0
    assert by_row[("identity", "none")]["mask_fpr"] == 0.0
    assert "text-free test-02-none-bikes: unchanged" in report.comparison()

    lite = run_bench(bench, "lite", "test", work_dir=tmp_path, log=lambda line: None)
    assert lite.backend_scored, lite.notes
    assert (lite.reference_computed, lite.reference_cached) == (0, 3)
    def reference(clips):  # JSON: NaN (text-free PSNRtxt) compares equal to NaN
        return json.dumps([r for r in clips if r["method"] in (INPUT_ROW, ORACLE_ROW)], sort_keys=True)

    assert reference(lite.clips) == reference(report.clips)
    table = lite.comparison()
    assert table.startswith("lite vs oracle-telea") and "\nall " in table and "text-free test-02-none-bikes" in table
