"""Stage II checkpoints: only what trains (LoRA + head + learned loss weight), never the
frozen 1.3B base, in the file names and formats of ``clear_ray.training.checkpoints``:
``model.safetensors`` (trainable tensors by name) and ``training_state.pt`` (optimizer,
scheduler, step, RNG; ``torch.load(weights_only=True)`` reads it). The shared writer saves
a module's whole state dict, which here would be the base model, hence this thin variant.
Whole tensors under DDP and FSDP alike (``parallel.py``): a run resumes under either.
"""

from __future__ import annotations

import os
from typing import Any

from clear_ray.training.checkpoints import (
    MODEL_FILE, STATE_FILE, load_state_file, save_checkpoint_files, unwrap,
)


def gather(module, optimizer) -> tuple[dict, dict]:
    """(trainable tensors by name, optimizer state dict), whole and on the CPU whatever the
    strategy. Under FSDP this gathers shards: every worker calls it, rank 0 writes."""
    from clear_ray.training.stage2.parallel import full_trainable_tensors

    return full_trainable_tensors(module), optimizer.state_dict()


def write(directory: str, tensors: dict, optimizer_state: dict, *, scheduler, step: int,
          extra: dict[str, Any] | None = None) -> None:
    save_checkpoint_files(directory, tensors, optimizer=optimizer_state, scheduler=scheduler, step=step, extra=extra)


def save(directory: str, *, module, optimizer, scheduler, step: int, extra: dict[str, Any] | None = None) -> None:
    """One process's ``gather`` + ``write``."""
    write(directory, *gather(module, optimizer), scheduler=scheduler, step=step, extra=extra)


def load_trainable(directory: str, module) -> None:
    """The checkpoint's tensors into an engine's (not yet sharded) module; every trainable
    tensor must be there."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(os.path.join(directory, MODEL_FILE))
    params = {name: param for name, param in unwrap(module).named_parameters() if param.requires_grad}
    if set(tensors) != set(params):
        missing, unknown = sorted(set(params) - set(tensors)), sorted(set(tensors) - set(params))
        raise ValueError(f"checkpoint {directory} does not fit this Stage II model: missing {missing[:2]}, "
                         f"unknown {unknown[:2]} (another LoRA rank, head or objective?)")
    with torch.no_grad():
        for name, tensor in tensors.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))


def load(directory: str, *, module, optimizer=None, scheduler=None, restore_random: bool = True
         ) -> tuple[int, dict[str, Any]]:
    """Restore a checkpoint into an engine's module (and optimizer, scheduler, RNG)."""
    load_trainable(directory, module)
    return load_state_file(directory, optimizer=optimizer, scheduler=scheduler, restore_random=restore_random)


def load_state_extra(directory: str) -> tuple[int, list]:
    """(step, metric history) of a checkpoint, without a model."""
    import torch

    state = torch.load(os.path.join(directory, STATE_FILE), map_location="cpu", weights_only=True)
    return int(state["step"]), list(state["extra"].get("history", []))
