"""Stage I losses, each returned per sample (shape (B,)).

Per-sample values averaged over the batch make the loss of a global batch the mean of the
workers' losses, so DDP's gradient averaging gives the same update for any worker count.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from clear_ray.training.stage1.config import Stage1LossConfig

EPS = 1.0  # smoothing of the region losses: an empty target with an empty prediction scores 0


def _per_sample_sum(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(dim=1)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al.), alpha weighting the text class, mean over pixels."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * (1 - p_t).pow(gamma) * ce).flatten(1).mean(dim=1)


def dice_loss(probability: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    overlap = _per_sample_sum(probability * target)
    return 1 - (2 * overlap + EPS) / (_per_sample_sum(probability) + _per_sample_sum(target) + EPS)


def iou_loss(probability: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    overlap = _per_sample_sum(probability * target)
    union = _per_sample_sum(probability) + _per_sample_sum(target) - overlap
    return 1 - (overlap + EPS) / (union + EPS)


def recall_penalty(probability: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Share of text pixels missed: a missed subtitle costs Stage II more than a false alarm."""
    return 1 - (_per_sample_sum(probability * target) + EPS) / (_per_sample_sum(target) + EPS)


def mask_losses(logits: torch.Tensor, target: torch.Tensor, config: Stage1LossConfig) -> dict[str, torch.Tensor]:
    logits, target = logits.float(), target.float()
    probability = torch.sigmoid(logits)
    parts = {
        "focal": focal_loss(logits, target, config.focal_alpha, config.focal_gamma),
        "dice": dice_loss(probability, target),
        "iou": iou_loss(probability, target),
        "recall": recall_penalty(probability, target),
    }
    parts["mask"] = (config.focal_weight * parts["focal"] + config.dice_weight * parts["dice"]
                     + config.iou_weight * parts["iou"] + config.recall_weight * parts["recall"])
    return parts


def orthogonality_loss(content: torch.Tensor, subtitle: torch.Tensor) -> torch.Tensor:
    """Mean |cosine| between the content and subtitle feature vectors of each pixel."""
    cosine = F.cosine_similarity(content.float(), subtitle.float(), dim=1, eps=1e-6)
    return cosine.abs().flatten(1).mean(dim=1)


def reconstruction_loss(reconstruction: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """L1 between the content branch's reconstruction and the clean frame, both on [-1, 1]."""
    return (reconstruction.float() - clean.float()).abs().flatten(1).mean(dim=1)


class UncertaintyWeighting(nn.Module):
    """Kendall et al.'s homoscedastic uncertainty weighting: sum_i exp(-s_i) L_i + s_i.

    ``s_i`` starts at -log(w_i), so the first steps weigh the tasks by CLEAR's initial
    weights; with ``learn`` off the weights stay fixed (and s_i adds a constant).
    """

    def __init__(self, initial_weights: tuple[float, ...], learn: bool = True):
        super().__init__()
        log_vars = torch.tensor([-math.log(w) for w in initial_weights], dtype=torch.float32)
        self.log_vars = nn.Parameter(log_vars, requires_grad=learn)

    def forward(self, task_losses: list[torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for log_var, loss in zip(self.log_vars, task_losses):
            total = total + torch.exp(-log_var) * loss + log_var
        return total

    def weights(self) -> list[float]:
        return [float(w) for w in torch.exp(-self.log_vars.detach())]


class Stage1Objective(nn.Module):
    """The network plus its loss, one module, so DDP syncs the learned loss weights too.

    ``forward`` returns batch means of every loss term; ``total`` is what to backpropagate.
    ``mask_weight`` (B,) switches the mask loss off for frames without usable labels (CLEAR
    skips pseudo-labelled frames with almost no difference).
    """

    def __init__(self, network: nn.Module, config: Stage1LossConfig):
        super().__init__()
        self.network = network
        self.config = config
        self.weighting = UncertaintyWeighting(config.initial_task_weights, config.learn_task_weights)

    def forward(self, subtitled: torch.Tensor, clean: torch.Tensor, target: torch.Tensor,
                mask_weight: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.network(subtitled)
        parts = mask_losses(out["mask_logits"], target, self.config)
        parts = {name: value * mask_weight for name, value in parts.items()}
        parts["orthogonality"] = orthogonality_loss(out["content"], out["subtitle"])
        parts["reconstruction"] = reconstruction_loss(out["reconstruction"], clean * 2 - 1)
        means = {name: value.mean() for name, value in parts.items()}
        means["total"] = self.weighting([means["mask"], means["orthogonality"], means["reconstruction"]])
        return means
