"""Subtitle removers behind one interface (see base.py); backends are imported on demand.

A backend class takes ``(RemoverConfig, device=...)`` (identity takes nothing) and has a
classmethod ``fingerprint_for(config)`` that identifies its output without loading any
weights, so the driver can compute resume keys cheaply. ``remover.plugin`` names any
other class with the same shape ("package.module:Class").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clear_ray.config import RemoverConfig
    from clear_ray.removers.base import Remover

# backend name -> "module:Class". Modules are imported only when chosen, so `identity`
# never imports torch.
BACKENDS = {
    "identity": "clear_ray.removers.identity:IdentityRemover",
    "lite": "clear_ray.removers.lite:LiteRemover",
    "clear": "clear_ray.removers.clear:ClearRemover",
}


def remover_class(config: "RemoverConfig") -> type:
    target = config.plugin or BACKENDS[config.resolved_backend()]
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise NotImplementedError(f"remover {target!r} is not available (no module {module_name})") from None
        raise
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise NotImplementedError(f"remover {target!r}: {module_name} has no class {class_name}") from None


def load_remover(config: "RemoverConfig", device: str = "cpu") -> "Remover":
    """Instantiate the configured remover (``auto`` resolved, plugin honoured) on ``device``."""
    cls = remover_class(config)
    if cls.__module__ == "clear_ray.removers.identity":
        return cls()
    return cls(config, device=device)


def model_fingerprint(config: "RemoverConfig") -> str:
    """The resume key of the configured remover, computed without loading its weights."""
    cls = remover_class(config)
    fingerprint = cls.fingerprint_for(config)
    return fingerprint if fingerprint.startswith(f"{cls.name}-") else f"{cls.name}-{fingerprint}"


def backend_wants_gpu(config: "RemoverConfig") -> bool:
    """Whether the configured remover benefits from a GPU."""
    if config.plugin:
        return bool(remover_class(config).wants_gpu)
    return config.resolved_backend() == "clear"
