"""The Stage I export Stage II loads: ``stage1.safetensors`` + ``stage1.json``.

Both are plain data: tensors in safetensors, settings in JSON (no pickles). The JSON holds
the network's settings (so the loader can rebuild it), the frame size it trained at, the
step and the last metrics; ``stage1_metrics.json`` holds every report of the run.
"""

from __future__ import annotations

import json
import os
from typing import Any

from clear_ray import storage as uris
from clear_ray.training.stage1.config import Stage1ModelConfig, Stage1TrainConfig

WEIGHTS_NAME = "stage1.safetensors"
CONFIG_NAME = "stage1.json"
METRICS_NAME = "stage1_metrics.json"
FORMAT = "clear-ray/stage1-occlusion-prior"
NETWORK_PREFIX = "network."


def export_checkpoint(directory: str, config: Stage1TrainConfig,
                      storage_options: dict | None) -> tuple[str, int, list[dict[str, Any]]]:
    """Write the export next to the run (``OUTPUT/stage1.safetensors``); returns its URI,
    the step it holds and the run's metric history."""
    import torch
    from safetensors.torch import load_file, save

    from clear_ray.training.checkpoints import MODEL_FILE, STATE_FILE

    tensors = load_file(os.path.join(directory, MODEL_FILE))
    network = {k[len(NETWORK_PREFIX):]: v for k, v in tensors.items() if k.startswith(NETWORK_PREFIX)}
    state = torch.load(os.path.join(directory, STATE_FILE), map_location="cpu", weights_only=True)
    history = list(state["extra"].get("history", []))
    # The export is self-contained: ImageNet weights were only an initialisation.
    model_config = config.model.model_copy(deep=True)
    model_config.backbone.imagenet_weights = None
    description = {
        "format": FORMAT, "version": 1, "step": int(state["step"]),
        "model": model_config.model_dump(mode="json"),
        "frame_size": [config.data.height, config.data.width],
        "supervision": config.data.supervision,
        "metrics": history[-1] if history else {},
    }
    weights_uri = uris.join(config.output, WEIGHTS_NAME)
    uris.write_bytes_atomic(weights_uri, save(network, metadata={"format": FORMAT}), storage_options)
    uris.write_bytes_atomic(uris.join(config.output, METRICS_NAME),
                            json.dumps(history, indent=1).encode(), storage_options)
    # The JSON goes last: a reader that finds it finds the weights too.
    uris.write_bytes_atomic(uris.join(config.output, CONFIG_NAME),
                            json.dumps(description, indent=1).encode(), storage_options)
    return weights_uri, int(state["step"]), history


def read_description(uri: str, storage_options: dict | None = None) -> dict[str, Any]:
    """``stage1.json`` of an export directory (or the JSON/weights file path itself)."""
    base = _export_dir(uri)
    description = json.loads(uris.read_bytes(uris.join(base, CONFIG_NAME), storage_options))
    if description.get("format") != FORMAT:
        raise ValueError(f"{uri} is not a Stage I export (format {description.get('format')!r})")
    return description


def load_prior(uri: str, storage_options: dict | None = None, device: str = "cpu"):
    """The exported occlusion prior, in eval mode: ``uri`` is the export directory (the
    training ``--output``), or its ``stage1.safetensors`` / ``stage1.json``."""
    from safetensors.torch import load

    from clear_ray.training.stage1.model import OcclusionPrior

    description = read_description(uri, storage_options)
    network = OcclusionPrior(Stage1ModelConfig.model_validate(description["model"]))
    network.load_state_dict(load(uris.read_bytes(uris.join(_export_dir(uri), WEIGHTS_NAME), storage_options)))
    network.frame_size = tuple(description["frame_size"])
    return network.to(device).eval()


def _export_dir(uri: str) -> str:
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        if uri.rstrip("/").endswith("/" + name) or uri == name:
            return uri.rstrip("/")[: -len(name)].rstrip("/") or "."
    return uri
