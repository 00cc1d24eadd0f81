"""Training and dev samples: frames decoded inside the worker, resized, labelled, augmented.

A training sample is one frame of one pair, chosen by a pure function of its global plan
position (see ``clear_ray.training.data``), so any worker count and any resume draws the
same samples.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from clear_ray.training.data import epoch_item, position_seed
from clear_ray.training.stage1.config import Stage1DataConfig
from clear_ray.training.stage1.model import interpolate_frames


def to_bchw(frames_thwc_u8: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 frames -> float (T, 3, height, width) on [0, 1]."""
    bchw = torch.from_numpy(np.ascontiguousarray(frames_thwc_u8)).permute(0, 3, 1, 2).float() / 255.0
    return interpolate_frames(bchw, height, width).clamp_(0.0, 1.0)


def resize_mask(mask_thw: np.ndarray, height: int, width: int) -> torch.Tensor:
    """bool/0-1 masks -> (T, 1, height, width) float {0, 1} (a pixel is text when most of it was)."""
    t1hw = torch.from_numpy(np.ascontiguousarray(mask_thw, dtype=np.float32))[:, None]
    return (interpolate_frames(t1hw, height, width) > 0.5).float()


def labels(frames, data: Stage1DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(mask_thw bool, usable_t bool)`` from a PairFrames, as the config supervises."""
    from clear_ray.pairs import pseudo_labels

    if data.supervision == "alpha":
        if frames.alpha_thw_u8 is None:
            raise ValueError("supervision 'alpha' needs pairs with an exact alpha; use supervision 'pseudo'")
        mask = frames.alpha_thw_u8 > data.alpha_threshold
        return mask, np.ones(mask.shape[0], dtype=bool)
    return pseudo_labels(frames.clean_thwc_u8, frames.subtitled_thwc_u8)


class TrainSampler:
    """``positions -> batch tensors`` for this worker (called in Ray Data's prefetch threads)."""

    def __init__(self, rows: Sequence[dict[str, Any]], data: Stage1DataConfig, seed: int,
                 storage_options: dict | None):
        if not rows:
            raise ValueError("the pairs index has no train rows")
        self.rows, self.data, self.seed, self.storage_options = list(rows), data, seed, storage_options

    def sample(self, position: int) -> dict[str, torch.Tensor]:
        from clear_ray.pairs import read_pair

        row = self.rows[epoch_item(position, len(self.rows), self.seed)]
        rng = np.random.default_rng(position_seed(position, self.seed))
        frame_index = int(rng.integers(0, int(row["frames"])))
        frames = read_pair(row, [frame_index], storage_options=self.storage_options)
        mask_thw, usable_t = labels(frames, self.data)
        h, w = self.data.height, self.data.width
        subtitled, clean = to_bchw(frames.subtitled_thwc_u8, h, w), to_bchw(frames.clean_thwc_u8, h, w)
        target = resize_mask(mask_thw, h, w)
        if self.data.hflip and rng.random() < 0.5:
            subtitled, clean, target = subtitled.flip(-1), clean.flip(-1), target.flip(-1)
        if self.data.brightness_jitter:
            gain = 1.0 + float(rng.uniform(-self.data.brightness_jitter, self.data.brightness_jitter))
            subtitled, clean = (subtitled * gain).clamp_(0, 1), (clean * gain).clamp_(0, 1)
        return {"subtitled": subtitled[0], "clean": clean[0], "target": target[0],
                "mask_weight": torch.tensor(float(usable_t[0]))}

    def __call__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        samples = [self.sample(p) for p in positions]
        return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}


def load_dev_frames(rows: Sequence[dict[str, Any]], data: Stage1DataConfig,
                    storage_options: dict | None) -> dict[str, torch.Tensor]:
    """Fixed, evenly spaced dev frames with their true (alpha) and pseudo-label masks.

    Rows without an alpha cannot be scored and are left out.
    """
    from clear_ray.pairs import pseudo_labels, read_pair

    subtitled, truth, pseudo = [], [], []
    scored = [row for row in rows if row.get("alpha_uri")][: data.max_dev_pairs]
    h, w = data.height, data.width
    for row in scored:
        count = int(row["frames"])
        indices = sorted({int(i) for i in np.linspace(0, count - 1, data.dev_frames_per_pair).round()})
        frames = read_pair(row, indices, storage_options=storage_options)
        subtitled.append(to_bchw(frames.subtitled_thwc_u8, h, w))
        truth.append(resize_mask(frames.alpha_thw_u8 > data.alpha_threshold, h, w))
        pseudo.append(resize_mask(pseudo_labels(frames.clean_thwc_u8, frames.subtitled_thwc_u8)[0], h, w))
    if not subtitled:
        return {}
    return {"subtitled": torch.cat(subtitled), "truth": torch.cat(truth), "pseudo": torch.cat(pseudo)}


def mask_scores(predicted: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """IoU and F1 over all pixels of all frames (boolean masks of one shape)."""
    predicted, truth = predicted.bool(), truth.bool()
    tp = float((predicted & truth).sum())
    fp = float((predicted & ~truth).sum())
    fn = float((~predicted & truth).sum())
    return {"iou": tp / max(tp + fp + fn, 1.0), "f1": 2 * tp / max(2 * tp + fp + fn, 1.0)}


@torch.no_grad()
def evaluate_dev(network, dev: dict[str, torch.Tensor], device, batch_size: int = 8) -> dict[str, float]:
    """The prior's dev mask IoU/F1 against the true alpha (threshold 0.5)."""
    was_training = network.training
    network.eval()
    predicted = []
    for start in range(0, dev["subtitled"].shape[0], batch_size):
        batch = dev["subtitled"][start:start + batch_size].to(device)
        predicted.append((network.predict_probabilities(batch) > 0.5).cpu())
    network.train(was_training)
    return mask_scores(torch.cat(predicted), dev["truth"][:, 0])
