"""Stage II samples: plan position -> (window pixels or cached latents, prior, noise seed).

Every choice is a pure function of the global plan position (``training.data``), so any
worker count trains on the same samples and a resumed run continues the same sequence:
the pair (each once per epoch, reshuffled per epoch), and the seed of the sample's noise
and flow-matching timestep.

A window is the first ``frames`` frames of a pair, resized to the model resolution. The
occlusion prior M_prior is the exact alpha (synthetic pairs) or the Stage I prior,
max-pooled to the latent grid: latent frame 0 is frame 0, latent frame j >= 1 covers
frames 4j-3 .. 4j (Wan's causal 4x time compression), and 8x8 pixels per latent pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

VAE_SPATIAL = 8
VAE_TEMPORAL = 4


def pool_to_latent_grid(prob_thw: np.ndarray) -> np.ndarray:
    """(T, H, W) in [0, 1], T = 4n+1, H and W multiples of 8 -> (n+1, H/8, W/8), max-pooled."""
    frames, height, width = prob_thw.shape
    if (frames - 1) % VAE_TEMPORAL or height % VAE_SPATIAL or width % VAE_SPATIAL:
        raise ValueError(f"cannot pool {prob_thw.shape} to the latent grid (need 4n+1 frames, multiples of 8)")
    spatial = prob_thw.reshape(frames, height // VAE_SPATIAL, VAE_SPATIAL, width // VAE_SPATIAL, VAE_SPATIAL)
    spatial = spatial.max(axis=(2, 4))
    rest = spatial[1:].reshape((frames - 1) // VAE_TEMPORAL, VAE_TEMPORAL, *spatial.shape[1:]).max(axis=1)
    return np.concatenate([spatial[:1], rest], axis=0).astype(np.float32)


def load_window(row: dict[str, Any], frames: int, width: int, height: int,
                storage_options: dict | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(clean, subtitled) uint8 (T, H, W, 3) at the model size, and alpha in [0, 1] or None."""
    from clear_ray.models.resolution import resize_frames
    from clear_ray.pairs import read_pair

    if int(row["frames"]) < frames:
        raise ValueError(f"pair {row['pair_id']} has {row['frames']} frames; training windows need {frames}")
    pair = read_pair(row, list(range(frames)), storage_options=storage_options)
    clean = resize_frames(pair.clean_thwc_u8, width, height)
    subtitled = resize_frames(pair.subtitled_thwc_u8, width, height)
    alpha = None
    if pair.alpha_thw_u8 is not None:
        alpha_thw3 = np.repeat(pair.alpha_thw_u8.astype(np.float32)[..., None] / np.float32(255.0), 3, axis=-1)
        alpha = np.clip(resize_frames(alpha_thw3, width, height)[..., 0], 0.0, 1.0)  # cv2 drops a lone channel
    return clean, subtitled, alpha


class WindowSampler:
    """``positions -> batch``: pixels of each window (on-the-fly encoding) or its cached
    latents, the latent-grid prior when it is the exact alpha (else the subtitled pixels
    the Stage I prior runs on, with or without the cache), and the noise seed."""

    def __init__(self, rows: list[dict[str, Any]], *, frames: int, width: int, height: int, seed: int,
                 prior: str, storage_options: dict | None = None, latent_cache: str | None = None):
        if not rows:
            raise ValueError("no training pairs")
        self.rows, self.frames, self.width, self.height = rows, frames, width, height
        self.seed, self.prior, self.storage_options, self.latent_cache = seed, prior, storage_options, latent_cache

    def __call__(self, positions: list[int]) -> dict[str, Any]:
        import torch

        from clear_ray.training.data import epoch_item, position_seed

        out: dict[str, list] = {"noise_seed": [], "pair_index": []}
        for position in positions:
            index = epoch_item(position, len(self.rows), self.seed)
            row = self.rows[index]
            out["noise_seed"].append(position_seed(position, self.seed))
            out["pair_index"].append(index)
            if self.latent_cache is not None:
                from clear_ray.training.stage2.latent_cache import read_latents

                for name, tensor in read_latents(self.latent_cache, row["pair_id"], self.storage_options).items():
                    if name != "prior" or self.prior == "alpha":
                        out.setdefault(name, []).append(tensor)
                if self.prior == "stage1":
                    # The Stage I prior runs on the window's pixels (``Stage2Engine.stage1_prior``):
                    # decoding them is cheap next to the VAE encode the cache saves, and the
                    # prior always comes from the --stage1 given now, never a stale cached one.
                    _, subtitled, _ = load_window(row, self.frames, self.width, self.height, self.storage_options)
                    out.setdefault("subtitled_u8", []).append(torch.from_numpy(subtitled))
                continue
            clean, subtitled, alpha = load_window(row, self.frames, self.width, self.height, self.storage_options)
            out.setdefault("clean_u8", []).append(torch.from_numpy(clean))
            out.setdefault("subtitled_u8", []).append(torch.from_numpy(subtitled))
            if self.prior == "alpha":
                if alpha is None:
                    raise ValueError(f"pair {row['pair_id']} has no exact alpha; use objective.prior = stage1")
                out.setdefault("prior", []).append(torch.from_numpy(pool_to_latent_grid(alpha))[None])
        return {name: torch.stack(values) if isinstance(values[0], torch.Tensor) else torch.tensor(values)
                for name, values in out.items()}
