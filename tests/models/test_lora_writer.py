"""The LoRA writer saves exactly what the inference loader reads, at the trained scale."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from clear_ray.models.files import ClearModelError, locate_model_files
from clear_ray.models.lora import fuse_lora, load_lora, lora_file_bytes, write_lora
from clear_ray.models.lora_peft import inject_lora, lora_factors, lora_layers
from clear_ray.testing.tiny_wan import TINY_DIT, build_tiny_dit


def _trained_dit(rank: int, alpha: float):
    dit = build_tiny_dit(seed=0)
    inject_lora(dit, rank=rank, alpha=alpha, seed=3)
    with torch.no_grad():  # PEFT starts B at zero: make the LoRA do something
        for module in lora_layers(dit).values():
            module.lora_B["default"].weight.normal_(0, 0.05)
    return dit


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_written_lora_fused_equals_the_peft_layers_when_alpha_differs_from_rank(tmp_path, suffix):
    rank, alpha = 4, 10.0  # scale 2.5: a loader that assumed alpha == rank would be 2.5x off
    trained = _trained_dit(rank, alpha)
    path = write_lora(str(tmp_path / f"lora{suffix}"), lora_factors(trained), rank=rank, alpha=alpha)
    lora = load_lora(path)
    assert len(lora.factors) == 10 * TINY_DIT["num_layers"] and lora.stored_scale == pytest.approx(2.5)

    fused = build_tiny_dit(seed=0)
    assert fuse_lora(fused, lora, strength=1.0) == 2 * len(lora.factors)
    for name, module in lora_layers(trained).items():
        base = dict(fused.named_modules())[name]
        x = torch.randn(3, base.in_features)
        torch.testing.assert_close(base(x), module(x), rtol=1e-5, atol=1e-5)


def test_torch_file_is_clears_layout_and_loads_with_weights_only(tmp_path):
    trained = _trained_dit(4, 4.0)
    (tmp_path / "l.pt").write_bytes(lora_file_bytes(lora_factors(trained), rank=4, alpha=4.0, suffix=".pt"))
    raw = torch.load(tmp_path / "l.pt", weights_only=True)
    assert set(raw) == {"model_state_dict", "lora_rank", "lora_alpha"}
    assert "blocks.0.self_attn.q.lora_A.default.weight" in raw["model_state_dict"]


def test_stored_rank_that_contradicts_the_factors_is_refused(tmp_path):
    trained = _trained_dit(4, 4.0)
    payload = {"model_state_dict": {f"{k}.lora_{w}.default.weight": t for k, (a, b) in lora_factors(trained).items()
                                    for w, t in (("A", a), ("B", b))}, "lora_rank": 8, "lora_alpha": 8.0}
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ClearModelError, match="stores lora_rank 8 but its factors have rank 4"):
        load_lora(tmp_path / "bad.pt")


def test_tiny_wan_command_writes_a_model_dir_the_loader_accepts(tmp_path):
    result = subprocess.run([sys.executable, "-m", "clear_ray.testing.tiny_wan", str(tmp_path / "m"),
                             "--lora", str(tmp_path / "l.pt")], capture_output=True, text=True, check=True)
    assert str(tmp_path / "m") in result.stdout
    files = locate_model_files(tmp_path / "m")
    assert files.architecture_file is not None and len(load_lora(tmp_path / "l.pt").factors) == 20
