"""Stage II at the real Wan2.1-Fun-V1.1-1.3B-Control size, on the meta device (no memory)."""

from __future__ import annotations

import torch

from clear_ray.models.files import FUN_CONTROL_V11_1P3B_DIT
from clear_ray.models.lora import lora_tensors, match_lora, parse_lora
from clear_ray.training.stage2.config import Stage2Config
from clear_ray.training.stage2.export import split_trainable
from clear_ray.training.stage2.losses import Stage2Objective
from clear_ray.training.stage2.model import build_stage2_model, parameter_counts

# q, k, v, o of self- and cross-attention: 2 * 4 * 64 * (1536 + 1536); ffn.0 and ffn.2:
# 2 * 64 * (1536 + 8960); per block 2,916,352, times 30 blocks.
EXPECTED_LORA = 30 * (8 * 64 * (1536 + 1536) + 2 * 64 * (1536 + 8960))
EXPECTED_HEAD = (9 * 1536 * 64 + 64) + (64 + 1)  # conv3x3 1536 -> 64, conv1x1 64 -> 1


def _meta_dit():
    from diffsynth.models.wan_video_dit import WanModel

    with torch.device("meta"):
        return WanModel(**FUN_CONTROL_V11_1P3B_DIT)


def test_real_size_lora_and_head_inject_count_and_export_keys_load_through_the_inference_loader(tmp_path):
    from clear_ray.training.stage2.engine import Stage2Module

    config = Stage2Config(pairs="unused", model_dir=tmp_path, output=str(tmp_path))  # defaults: r64, alpha 64, head
    model = build_stage2_model(_meta_dit(), config, device="meta")
    module = Stage2Module(model, Stage2Objective("paper"))

    counts = parameter_counts(model)
    print(f"real size: LoRA {counts['lora']:,} + head {counts['head']:,} = {counts['trainable']:,} trainable "
          f"over {counts['frozen']:,} frozen")
    assert counts["lora"] == EXPECTED_LORA == 87_490_560
    assert counts["head"] == EXPECTED_HEAD == 884_865
    assert counts["frozen"] > 1_300_000_000  # the 1.3B base (with its image-embedding parts) stays frozen

    # The names a checkpoint holds -> the exporter's factors -> the written key layout ->
    # the inference loader's parser and matcher against a fresh (un-injected) DiT.
    trainable = {name: param for name, param in module.named_parameters() if param.requires_grad}
    factors, head = split_trainable(trainable)
    assert len(factors) == 300 and set(head) == {"conv3.weight", "conv3.bias", "conv1.weight", "conv1.bias"}
    lora = parse_lora(lora_tensors(factors), tmp_path / "clear_lora.safetensors")
    matched = match_lora(_meta_dit(), lora)
    assert len(matched) == 300 and lora.ranks == [64]
    assert {name.split(".", 2)[2] for name in matched} == {
        f"{attn}.{proj}" for attn in ("self_attn", "cross_attn") for proj in "qkvo"} | {"ffn.0", "ffn.2"}
