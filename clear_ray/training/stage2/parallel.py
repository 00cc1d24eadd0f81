"""How a Stage II worker's module is spread over the workers (``strategy``), and checkpoint
state that does not depend on it.

    ddp   every worker holds the whole module; gradients are all-reduced (Ray Train's DDP).
    fsdp  torch FSDP2 (``fully_shard``): each DiT block is one unit, the rest (embeddings, the
          DiT's output layer, the occlusion head, learned loss weights) the root unit.
          Parameters, gradients and AdamW state are sharded on dim 0 over the workers
          (DTensors). The LoRA factors stay fp32 over the frozen base (bf16 on GPU): FSDP2
          all-gathers mixed dtypes and only needs the *trainable* tensors of a unit uniform.

Checkpoints hold full tensors under either strategy, in the layout an unwrapped module and a
plain optimizer give: ``full_trainable_tensors`` gathers the shards (a collective: every worker
calls it) and an FSDP optimizer's ``state_dict`` / ``load_state_dict`` are hooked to gather /
re-shard its state. So a run resumes under the other strategy or another worker count, and
the export never sees a shard.
"""

from __future__ import annotations

import contextlib
from typing import Any


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def wrap(module, strategy: str, device) -> Any:
    """``module`` ready for this world: bare on one worker, else DDP or FSDP2 (in place).
    Build the optimizer after this: FSDP2 replaces the parameters with sharded ones."""
    if world_size() == 1:
        return module
    if strategy == "ddp":
        import ray.train.torch

        return ray.train.torch.prepare_model(module, parallel_strategy="ddp", move_to_device=False)
    if strategy != "fsdp":
        raise ValueError(f"unknown strategy {strategy!r}")
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(torch.device(device).type, (world_size(),))
    # Blocks first (each gathers its shards just before it runs, also when gradient
    # checkpointing re-runs it in backward), then the root takes every parameter left.
    for block in module.model.dit.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(module, mesh=mesh)
    return module


def is_sharded(module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(param, DTensor) for param in module.parameters())


@contextlib.contextmanager
def gradient_sync(module, enabled: bool):
    """Skip the gradient exchange on the micro-steps before the last of an accumulation."""
    if enabled:
        yield
    elif hasattr(module, "no_sync"):  # DDP
        with module.no_sync():
            yield
    elif hasattr(module, "set_requires_gradient_sync"):  # FSDP2: accumulate unsharded grads locally
        module.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            module.set_requires_gradient_sync(True)
    else:
        yield


def full_tensor(tensor):
    """The whole tensor: gathered from every worker for a DTensor (a collective), else itself."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def full_trainable_tensors(module) -> dict:
    """Every trainable tensor by name, whole and on the CPU (the names FSDP2 and DDP keep are
    the unwrapped module's; ``checkpoints.unwrap`` strips DDP's ``module.``)."""
    from clear_ray.training.checkpoints import unwrap

    return {name: full_tensor(param.detach()).to("cpu").contiguous()
            for name, param in unwrap(module).named_parameters() if param.requires_grad}


def make_optimizer_state_full(optimizer) -> None:
    """Hook an optimizer over FSDP2 (DTensor) parameters so that ``state_dict()`` returns whole
    CPU tensors (every worker must call it: it gathers) and ``load_state_dict`` takes them and
    keeps each worker's shard, exactly the state a plain optimizer reads and writes."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    params = [param for group in optimizer.param_groups for param in group["params"]]

    def gather(_optimizer, state_dict):
        # New dicts: the packed state shares its per-parameter dicts with the live optimizer.
        state = {index: {key: value.full_tensor().to("cpu") if isinstance(value, DTensor) else value
                         for key, value in values.items()}
                 for index, values in state_dict["state"].items()}
        return {**state_dict, "state": state}

    def shard(_optimizer, state_dict):
        state = {}
        for index, values in state_dict["state"].items():
            param = params[int(index)]
            state[index] = {key: distribute_tensor(value.to(param.device, param.dtype), param.device_mesh,
                                                   param.placements)
                            if isinstance(param, DTensor) and getattr(value, "shape", None) == param.shape else value
                            for key, value in values.items()}
        return {**state_dict, "state": state}

    optimizer.register_state_dict_post_hook(gather)
    optimizer.register_load_state_dict_pre_hook(shard)
