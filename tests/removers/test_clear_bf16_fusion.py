"""A LoRA fused into bf16 weights stays as close to PEFT's unfused bf16 forward as bf16
itself allows: fusing must add no error beyond bf16's own rounding.

Stated tolerance: on one DiT velocity prediction, |fused bf16 - unfused fp32| is at most
2x |unfused bf16 - unfused fp32| + 1e-3 (max over all values), and the fused bf16 output
moves with the LoRA (it is nowhere near the base model's)."""

from __future__ import annotations

import copy

import pytest
import torch

from clear_ray.models.lora import fuse_lora, load_lora
from clear_ray.testing.tiny_wan import LORA_TARGETS, TINY_DIT, build_tiny_dit, write_tiny_lora


def _velocity(dit: torch.nn.Module, dtype: torch.dtype, inputs: dict) -> torch.Tensor:
    from diffsynth.pipelines.wan_video import model_fn_wan_video

    dit = dit.to(dtype)
    with torch.no_grad():
        cast = {k: v.to(dtype) for k, v in inputs.items()}
        return model_fn_wan_video(dit=dit, **cast).float()


def _peft_unfused(dit: torch.nn.Module, lora_path, rank: int, scale: float) -> torch.nn.Module:
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=scale * rank, target_modules=list(LORA_TARGETS), lora_dropout=0.0,
                        bias="none")
    dit = inject_adapter_in_model(config, copy.deepcopy(dit))
    checkpoint = torch.load(lora_path, weights_only=True)["model_state_dict"]
    _, unexpected = dit.load_state_dict({k.removeprefix("pipe.dit."): v for k, v in checkpoint.items()}, strict=False)
    assert not unexpected
    return dit


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_fused_bf16_lora_is_within_bf16_noise_of_unfused(tmp_path, scale):
    rank = 8
    lora_path = write_tiny_lora(tmp_path / "lora.pt", rank=rank, seed=3)
    base = build_tiny_dit(seed=0)
    generator = torch.Generator().manual_seed(0)
    latent_frames, height, width = 2, 6, 8
    inputs = dict(
        latents=torch.randn(1, 16, latent_frames, height, width, generator=generator),
        timestep=torch.tensor([700.0]),
        context=torch.randn(1, 12, TINY_DIT["text_dim"], generator=generator),
        clip_feature=torch.zeros(1, 257, 1280),
        y=torch.cat([torch.randn(1, 16, latent_frames, height, width, generator=generator),
                     torch.zeros(1, TINY_DIT["in_dim"] - 32, latent_frames, height, width)], dim=1),
    )
    unfused = _peft_unfused(base, lora_path, rank, scale)
    reference_fp32 = _velocity(copy.deepcopy(unfused), torch.float32, inputs)
    unfused_bf16 = _velocity(copy.deepcopy(unfused), torch.bfloat16, inputs)
    fused = copy.deepcopy(base).to(torch.bfloat16)
    fuse_lora(fused, load_lora(lora_path), scale)  # W += scale * B A in fp32, rounded once to bf16
    fused_bf16 = _velocity(fused, torch.bfloat16, inputs)
    base_fp32 = _velocity(copy.deepcopy(base), torch.float32, inputs)

    bf16_noise = (unfused_bf16 - reference_fp32).abs().max().item()
    fusion_error = (fused_bf16 - reference_fp32).abs().max().item()
    assert fusion_error <= 2 * bf16_noise + 1e-3, (fusion_error, bf16_noise)
    lora_effect = (reference_fp32 - base_fp32).abs().max().item()
    assert lora_effect > 20 * fusion_error, (lora_effect, fusion_error)  # the LoRA is really in there
