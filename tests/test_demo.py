"""`clear-ray demo` end to end: clip, real job, comparison video, report with scores."""

import json
import subprocess

import pytest


@pytest.mark.slow
def test_demo_writes_output_comparison_and_report(ray_cluster, tmp_path):
    import ray

    out = tmp_path / "demo"
    result = subprocess.run(["clear-ray", "demo", "--out", str(out), "--seconds", "2",
                             "--address", ray.get_runtime_context().gcs_address],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].endswith("report.html") and "comparison" in lines[-2] and "output" in lines[-3]
    for line in lines[-3:]:
        assert (out / line.split()[-1].split(str(out) + "/")[-1]).exists()
    report = (out / "report.html").read_text()
    assert "PSNR in text" in report and report.count("<img") >= 3
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores) == {"input (do nothing)", "lite output"}
    # The embedded remover must beat doing nothing inside the text.
    assert scores["lite output"]["psnr_text"] > scores["input (do nothing)"]["psnr_text"] + 3
