"""Trainable LoRA on the Wan DiT through PEFT, and its factors in the layout ``lora.py`` reads.

Training injects PEFT LoRA layers (CLEAR's targets: q, k, v, o of self- and cross-attention
and ffn.0, ffn.2 in every block; 10 per block, 300 in the 1.3B DiT). The layer computes
``W x + (alpha / rank) B (A x)``; ``lora_factors`` reads (A, B) back per layer name, which
``lora.write_lora`` saves with rank and alpha, and ``lora.fuse_lora`` fuses at inference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clear_ray.models.lora import CLEAR_TARGETS

if TYPE_CHECKING:
    import torch

ADAPTER = "default"  # PEFT's adapter name; it appears in CLEAR's released key names


def inject_lora(dit: "torch.nn.Module", *, rank: int, alpha: float, lora_dtype: "torch.dtype | None" = None,
                seed: int | None = None) -> list[str]:
    """Add a trainable rank-``rank`` LoRA to every CLEAR target of ``dit`` (in place), freeze
    everything else, keep the LoRA factors in ``lora_dtype`` (fp32 over a bf16 base).
    PEFT's init: A Kaiming-uniform, B zero, so the model starts exactly as the base.
    Returns the adapted layer names."""
    import torch
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(CLEAR_TARGETS), lora_dropout=0.0,
                        bias="none", init_lora_weights=True)
    if seed is not None:
        torch.manual_seed(seed)
    dit.requires_grad_(False)
    inject_adapter_in_model(config, dit, adapter_name=ADAPTER)
    layers = sorted(lora_layers(dit))
    if not layers:
        raise ValueError("no LoRA target (q, k, v, o, ffn.0, ffn.2) found in the DiT")
    for name, module in lora_layers(dit).items():
        for factor in (module.lora_A[ADAPTER], module.lora_B[ADAPTER]):
            if lora_dtype is not None:
                factor.to(dtype=lora_dtype)
            factor.requires_grad_(True)
    return layers


def lora_layers(model: "torch.nn.Module") -> dict[str, "torch.nn.Module"]:
    """PEFT LoRA layers of ``model`` by the name of the Linear they adapt."""
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}


def lora_factors(model: "torch.nn.Module") -> dict[str, tuple["torch.Tensor", "torch.Tensor"]]:
    """``{layer: (A (rank, in), B (out, rank))}``, detached, for ``lora.write_lora``."""
    return {name: (module.lora_A[ADAPTER].weight.detach(), module.lora_B[ADAPTER].weight.detach())
            for name, module in sorted(lora_layers(model).items())}


def lora_state_dict(model: "torch.nn.Module") -> dict[str, "torch.Tensor"]:
    """The trainable LoRA tensors under their PEFT names (what a training checkpoint keeps)."""
    return {name: param.detach() for name, param in model.named_parameters() if ".lora_" in name}


def load_lora_state_dict(model: "torch.nn.Module", state_dict: dict[str, "torch.Tensor"]) -> None:
    """Restore ``lora_state_dict`` output into an injected model; every key must match."""
    import torch

    params = dict(model.named_parameters())
    missing = sorted(set(name for name in params if ".lora_" in name) - set(state_dict))
    unknown = sorted(set(state_dict) - set(params))
    if missing or unknown:
        raise ValueError(f"LoRA state does not fit the model: {len(missing)} missing (e.g. {missing[:1]}), "
                         f"{len(unknown)} unknown (e.g. {unknown[:1]})")
    with torch.no_grad():
        for name, tensor in state_dict.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))
