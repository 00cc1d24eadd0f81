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
    """With latent windows (3 latent frames, windows of 2, stride 1): the stock call gets
    the same sliding window, and the remover runs ``windowing: latent``."""
    spec = importlib.util.spec_from_file_location("clear_gpu", SCRIPT)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    results = benchmark.measure("cpu", torch.float32, frames=9, height=48, width=64, steps=1, repeats=1, warmups=0,
                                peft_reference=True, sliding_window=(2, 1), dit_kwargs=TINY_DIT, vae_kwargs=TINY_VAE,
                                text_encoder_kwargs=TINY_TEXT_ENCODER)
    assert results["max_abs_diff"] == 0.0 and results["finite"]
    for variant in ("ours", "ours_untiled"):
        assert set(results[variant]) == {"vae_encode", "dit", "vae_decode", "total"}
        assert all(seconds > 0 for seconds in results[variant].values())
    assert results["stock_total"] > 0 and results["peft_total"] > 0
    assert results["remover_total"] > 0 and results["remover_runtime"]["attention"].startswith("cpu:")
    # The mask's reference decode and the frame work on the device are counted.
    assert {"vae_decode_reference", "frames_in", "frames_out"} <= set(results["remover_phases"])
    text = benchmark.report(results, 9, 48, 64, 1, "cpu", "float32", overlap=1)
    assert "stock / ours" in text and "s/frame" in text and "CLEAR as released" in text
    assert "per new output frame (8 new of 9)" in text and "goal <= 0.12" in text and "latent windows 2/1" in text
