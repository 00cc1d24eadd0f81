"""From a Stage II checkpoint to what users load: the LoRA (for ``clear-ray remove --backend
clear --lora``) and the occlusion head.

    OUTPUT/export/clear_lora.safetensors    LoRA factors, PEFT names, lora_rank + lora_alpha
    OUTPUT/export/clear_lora.pt             the same in CLEAR's released .pt layout
    OUTPUT/export/occlusion_head.safetensors  head weights; metadata: block, dim, hidden
    OUTPUT/export/stage2.json               step, settings, last metrics

Written from the checkpoint's ``model.safetensors`` alone (no model is built), each file
atomically.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from clear_ray import storage as uris

LORA_KEY = re.compile(r"^model\.dit\.(?P<layer>.+)\.lora_(?P<which>[AB])\.default\.weight$")
HEAD_PREFIX = "model.head."


def split_trainable(tensors: dict) -> tuple[dict[str, tuple], dict]:
    """(LoRA factors by layer, head tensors by name) from a checkpoint's trainable tensors."""
    halves: dict[str, dict[str, Any]] = {}
    head = {}
    for name, tensor in tensors.items():
        match = LORA_KEY.match(name)
        if match:
            halves.setdefault(match["layer"], {})[match["which"]] = tensor
        elif name.startswith(HEAD_PREFIX):
            head[name[len(HEAD_PREFIX):]] = tensor
    factors = {layer: (pair["A"], pair["B"]) for layer, pair in sorted(halves.items())}
    return factors, head


def export_checkpoint(directory: str, config, storage_options: dict | None = None,
                      metrics: dict[str, Any] | None = None) -> dict[str, str]:
    import torch
    from safetensors.torch import load_file, save

    from clear_ray.models.lora import write_lora
    from clear_ray.training.checkpoints import MODEL_FILE, STATE_FILE

    tensors = load_file(os.path.join(directory, MODEL_FILE))
    state = torch.load(os.path.join(directory, STATE_FILE), map_location="cpu", weights_only=True)
    factors, head = split_trainable(tensors)
    if not factors:
        raise ValueError(f"checkpoint {directory} holds no LoRA tensors")
    export = uris.join(config.output, "export")
    out = {}
    for suffix in (".safetensors", ".pt"):
        out[f"lora{suffix}"] = write_lora(uris.join(export, f"clear_lora{suffix}"), factors, rank=config.lora.rank,
                                          alpha=config.lora.alpha, storage_options=storage_options)
    if head:
        dim = int(head["conv3.weight"].shape[1])
        metadata = {"block": str(config.head.block), "dim": str(dim), "hidden": str(config.head.hidden)}
        out["head"] = uris.join(export, "occlusion_head.safetensors")
        uris.write_bytes_atomic(out["head"], save({k: v.contiguous() for k, v in head.items()}, metadata=metadata),
                                storage_options)
    summary = {"step": int(state["step"]), "lora_layers": len(factors), "lora_rank": config.lora.rank,
               "lora_alpha": config.lora.alpha, "settings": config.model_dump(mode="json", exclude={"run"}),
               "metrics": metrics or {}}
    out["summary"] = uris.join(export, "stage2.json")
    uris.write_bytes_atomic(out["summary"], json.dumps(summary, indent=2, default=str).encode(), storage_options)
    return out


def load_head(uri: str, storage_options: dict | None = None):
    """The exported occlusion head as an ``OcclusionHead``, and the DiT block it reads."""
    import struct

    from safetensors.torch import load

    from clear_ray.training.stage2.model import OcclusionHead

    data = uris.read_bytes(uri, storage_options)
    header_length = struct.unpack("<Q", data[:8])[0]
    metadata = json.loads(data[8:8 + header_length]).get("__metadata__", {})
    tensors = load(data)
    head = OcclusionHead(int(metadata["dim"]), int(metadata["hidden"]))
    head.load_state_dict(tensors)
    return head, int(metadata["block"])
