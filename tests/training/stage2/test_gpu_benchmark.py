"""benchmarks/train_stage2_gpu.py: its measured step runs (tiny DiT, CPU); without CUDA it refuses."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch


def test_the_measured_step_runs_and_trains_on_the_tiny_dit():
    from benchmarks.train_stage2_gpu import build, measure
    from clear_ray.testing.tiny_wan import TINY_DIT

    module, counts = build(torch.device("cpu"), dict(TINY_DIT), dtype=torch.float32)
    before = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    for checkpointing in (True, False):
        result = measure(module, frames=5, height=32, width=32, steps=1, checkpointing=checkpointing,
                         device=torch.device("cpu"))
        assert result["step_s"] > 0 and "error" not in result
    changed = [n for n, p in module.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert any(".lora_B" in n for n in changed) and any("head" in n for n in changed)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_refuses_without_cuda():
    result = subprocess.run([sys.executable, "benchmarks/train_stage2_gpu.py"], capture_output=True, text=True)
    assert result.returncode == 2 and "needs a CUDA device" in result.stderr
