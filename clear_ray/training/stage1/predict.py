"""Masks from the Stage I prior for a clip: what Stage II distils from."""

from __future__ import annotations

import math

import numpy as np


def working_size(height: int, width: int, trained_hw: tuple[int, int]) -> tuple[int, int]:
    """The clip's aspect ratio at the pixel count the prior trained at, in multiples of 32."""
    from clear_ray.training.stage1.model import resize_to_multiple

    scale = math.sqrt(trained_hw[0] * trained_hw[1] / float(height * width))
    return resize_to_multiple(height * scale, width * scale)


def predict_masks(network, frames_thwc_u8: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Text probability per pixel, (T, H, W) float32 in [0, 1], at the clip's own size.

    ``network`` comes from ``load_prior``; frames run at the size it trained at (same
    pixel count, the clip's aspect), in bf16 on CUDA and fp32 on CPU.
    """
    import torch

    from clear_ray.training.stage1.model import interpolate_frames
    from clear_ray.training.stage1.samples import to_bchw

    if frames_thwc_u8.ndim != 4 or frames_thwc_u8.shape[-1] != 3 or frames_thwc_u8.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames_thwc_u8.dtype} {frames_thwc_u8.shape}")
    t, height, width, _ = frames_thwc_u8.shape
    trained = getattr(network, "frame_size", (height, width))
    h, w = working_size(height, width, trained)
    device = next(network.parameters()).device
    out = []
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for start in range(0, t, batch_size):
            batch = to_bchw(frames_thwc_u8[start:start + batch_size], h, w).to(device)
            probability = network.predict_probabilities(batch)[:, None].float()
            out.append(interpolate_frames(probability, height, width)[:, 0].clamp_(0, 1).cpu())
    return torch.cat(out).numpy().astype(np.float32)
