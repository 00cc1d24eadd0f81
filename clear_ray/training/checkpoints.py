"""Training checkpoints that load without unpickling code.

A checkpoint directory holds ``model.safetensors`` (every trainable tensor of the
objective: network + learned loss weights) and ``training_state.pt`` (optimizer,
scheduler, step, RNG states, small extras), written with ``torch.save`` from tensors,
numbers, strings, lists and dicts only, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import os
import random
from typing import Any

MODEL_FILE = "model.safetensors"
STATE_FILE = "training_state.pt"


def unwrap(model):
    """The module inside a DistributedDataParallel (or compiled) wrapper."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def state_dict_tensors(model) -> dict:
    """A contiguous CPU copy of the state dict, as safetensors wants it."""
    return {name: tensor.detach().to("cpu").contiguous() for name, tensor in unwrap(model).state_dict().items()}


def capture_rng() -> dict[str, Any]:
    import numpy as np
    import torch

    version, keys, gauss = random.getstate()
    name, key_array, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(keys), gauss],
        "numpy": [name, torch.from_numpy(key_array.astype("int64")), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    name, key_tensor, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, key_tensor.numpy().astype("uint32"), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(directory: str, *, model, optimizer, scheduler, step: int,
                        extra: dict[str, Any] | None = None) -> None:
    """Write the checkpoint files into ``directory`` (which Ray Train then uploads)."""
    save_checkpoint_files(directory, state_dict_tensors(model), optimizer=optimizer, scheduler=scheduler,
                          step=step, extra=extra)


def save_checkpoint_files(directory: str, tensors: dict, *, optimizer, scheduler, step: int,
                          extra: dict[str, Any] | None = None) -> None:
    """``tensors`` as ``MODEL_FILE`` and the optimizer (or its state dict, already gathered
    from sharded workers), scheduler, step, RNG and ``extra`` as ``STATE_FILE``: the layout
    every stage's checkpoint has."""
    import torch
    from safetensors.torch import save_file

    os.makedirs(directory, exist_ok=True)
    save_file(tensors, os.path.join(directory, MODEL_FILE))
    optimizer_state = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()
    state = {"step": int(step), "optimizer": optimizer_state, "scheduler": scheduler.state_dict(),
             "rng": capture_rng(), "extra": dict(extra or {})}
    torch.save(state, os.path.join(directory, STATE_FILE))


def load_training_state(directory: str, *, model, optimizer=None, scheduler=None,
                        restore_random: bool = True) -> tuple[int, dict[str, Any]]:
    """Load a checkpoint written by ``save_training_state``; returns ``(step, extra)``."""
    from safetensors.torch import load_file

    unwrap(model).load_state_dict(load_file(os.path.join(directory, MODEL_FILE)))
    return load_state_file(directory, optimizer=optimizer, scheduler=scheduler, restore_random=restore_random)


def load_state_file(directory: str, *, optimizer=None, scheduler=None,
                    restore_random: bool = True) -> tuple[int, dict[str, Any]]:
    """Restore the optimizer, scheduler and RNG from ``STATE_FILE`` (``weights_only``: no
    pickled code runs); returns ``(step, extra)``."""
    import torch

    state = torch.load(os.path.join(directory, STATE_FILE), map_location="cpu", weights_only=True)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if restore_random:
        restore_rng(state["rng"])
    return int(state["step"]), state["extra"]
