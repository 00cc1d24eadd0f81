"""Stage I: the occlusion prior (dual ResNet encoders + FPN + disentangled heads).

For Stage II: ``load_prior(uri)`` -> network, ``predict_masks(network, frames_thwc_u8)`` ->
(T, H, W) probabilities. Light at import; torch loads on first call.
"""

from __future__ import annotations


def load_prior(uri: str, storage_options: dict | None = None, device: str = "cpu"):
    from clear_ray.training.stage1.export import load_prior as _load

    return _load(uri, storage_options=storage_options, device=device)


def predict_masks(network, frames_thwc_u8, batch_size: int = 8):
    from clear_ray.training.stage1.predict import predict_masks as _predict

    return _predict(network, frames_thwc_u8, batch_size=batch_size)


__all__ = ["load_prior", "predict_masks"]
