"""benchmarks/clear_gpu.py: refuses without CUDA; its measuring code runs end to end on
the tiny model on CPU (the GPU run itself needs an H200 and is not part of the suite)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clear_ray.testing.tiny_wan import TINY_DIT, TINY_TEXT_ENCODER, TINY_VAE

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "clear_gpu.py"


def test_refuses_to_run_without_cuda_with_one_line_and_status_2():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(SCRIPT), "--steps", "1"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "needs a CUDA GPU" in result.stderr


@pytest.mark.slow  # ~15 s alone, more on a busy machine: 4 tiny pipeline runs + peft
def test_the_measurement_runs_on_the_tiny_model_and_ours_equals_stock():
    spec = importlib.util.spec_from_file_location("clear_gpu", SCRIPT)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    results = benchmark.measure("cpu", torch.float32, frames=5, height=48, width=64, steps=1, repeats=1, warmups=0,
                                peft_reference=True, dit_kwargs=TINY_DIT, vae_kwargs=TINY_VAE,
                                text_encoder_kwargs=TINY_TEXT_ENCODER)
    assert results["max_abs_diff"] == 0.0 and results["finite"]
    for variant in ("ours", "ours_untiled"):
        assert set(results[variant]) == {"vae_encode", "dit", "vae_decode", "total"}
        assert all(seconds > 0 for seconds in results[variant].values())
    assert results["stock_total"] > 0 and results["peft_total"] > 0
    assert results["remover_total"] > 0 and results["remover_runtime"]["attention"].startswith("cpu:")
    assert "vae_decode_reference" in results["remover_phases"]  # the mask's reference decode is counted
    text = benchmark.report(results, 5, 48, 64, 1, "cpu", "float32", overlap=1)
    assert "stock / ours" in text and "s/frame" in text and "CLEAR as released" in text
    assert "per new output frame (4 new of 5)" in text and "goal <= 0.12" in text
