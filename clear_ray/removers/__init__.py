"""Subtitle removers behind one interface (see base.py); backends are imported on demand."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clear_ray.config import RemoverConfig
    from clear_ray.removers.base import Remover

# backend name -> "module:factory". A factory takes (RemoverConfig, device) and returns a
# Remover. Modules are imported only when chosen, so `identity` never imports torch.
BACKENDS = {
    "identity": "clear_ray.removers.identity:IdentityRemover",
    "lite": "clear_ray.removers.lite:LiteRemover",
    "clear": "clear_ray.removers.clear:ClearRemover",
}


def load_remover(config: "RemoverConfig", device: str = "cpu") -> "Remover":
    """Instantiate the configured backend (``auto`` resolved) on ``device``."""
    backend = config.resolved_backend()
    module_name, factory_name = BACKENDS[backend].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise NotImplementedError(f"backend {backend!r} is not available in this version") from None
        raise
    factory = getattr(module, factory_name)
    if backend == "identity":
        return factory()
    return factory(config, device=device)


def backend_wants_gpu(config: "RemoverConfig") -> bool:
    """Whether the resolved backend benefits from a GPU, without importing it."""
    return config.resolved_backend() == "clear"
