"""Stage II objectives on the latent grid.

``paper`` (arXiv 2603.21901):
    L_gen     = mean(w * (v_hat - v)^2),  w = (1 + a_k * M) * (eps + delta)^0.8,
                delta = |v_hat - v| and M both detached inside w,  a_k = 5 + 10 |sin(2 pi k / 40)|
    L_distill = SmoothL1(M, M_prior)
    L_sparse  = mean(M) + 0.5 * KL(M || M_prior)       (per-element Bernoulli KL)
    L         = L_distill + L_gen + 0.1 * L_sparse
``clear_released`` (silent-commit/CLEAR train_stage2.py): w = clamp((1 + a_k * M)(delta +
1e-6)^1.5, 0.1, 20) with a_k a 5 -> 15 -> 5 triangle over 20 steps, M the prior (the
release has no head; with a head its losses are added as in the paper), plus a multiscale
Charbonnier loss on the temporal differences of the predicted clean latents with a learned
weight. A free learned weight on a loss would collapse to 0, so it is learned in the
uncertainty form  lambda * L_temp - init * log(lambda)  (optimum lambda = init / L_temp).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

PROB_EPS = 1e-6


def alpha_paper(step: int) -> float:
    return 5.0 + 10.0 * abs(math.sin(2.0 * math.pi * step / 40.0))


def alpha_released(step: int) -> float:
    """5 -> 15 -> 5 over 20 steps (a triangle wave)."""
    phase = (step % 20) / 20.0
    return 5.0 + 10.0 * (1.0 - abs(2.0 * phase - 1.0))


def bernoulli_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(Bernoulli(p) || Bernoulli(q))."""
    p = p.clamp(PROB_EPS, 1 - PROB_EPS)
    q = q.clamp(PROB_EPS, 1 - PROB_EPS)
    return p * (p.log() - q.log()) + (1 - p) * ((1 - p).log() - (1 - q).log())


def charbonnier(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt(x * x + eps * eps).mean()


def temporal_charbonnier(pred_x0: torch.Tensor, clean_x0: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Charbonnier of (frame-to-frame change of the prediction - of the target), at 1, 1/2, 1/4."""
    if pred_x0.shape[2] < 2:
        return pred_x0.new_zeros(())
    pred, clean, total = pred_x0.float(), clean_x0.float(), 0.0
    for scale in range(scales):
        if scale:
            pred = F.avg_pool3d(pred, (1, 2, 2), ceil_mode=True)
            clean = F.avg_pool3d(clean, (1, 2, 2), ceil_mode=True)
        total = total + charbonnier((pred[:, :, 1:] - pred[:, :, :-1]) - (clean[:, :, 1:] - clean[:, :, :-1]))
    return total / scales


class Stage2Objective(nn.Module):
    """The loss as a module, so a learned weight (clear_released) trains and checkpoints
    with the model."""

    def __init__(self, variant: str = "paper", *, distill_weight: float = 1.0, sparse_weight: float = 0.1,
                 kl_weight: float = 0.5, eps: float = 1e-3, temporal_weight_init: float = 0.1):
        super().__init__()
        if variant not in ("paper", "clear_released"):
            raise ValueError(f"unknown Stage II objective {variant!r}")
        self.variant = variant
        self.distill_weight, self.sparse_weight, self.kl_weight, self.eps = distill_weight, sparse_weight, kl_weight, eps
        self.temporal_weight_init = temporal_weight_init
        if variant == "clear_released":
            self.log_temporal_weight = nn.Parameter(torch.tensor(math.log(temporal_weight_init)))

    def forward(self, *, velocity: torch.Tensor, target: torch.Tensor, occlusion: torch.Tensor | None,
                prior: torch.Tensor, step: int, noisy: torch.Tensor | None = None, sigma: torch.Tensor | None = None,
                clean: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """``velocity``, ``target`` (B, C, T, h, w); ``occlusion`` M and ``prior`` (B, 1, T, h, w)
        in [0, 1]; ``step`` the optimizer step k. Returns the total and its parts."""
        velocity, target, prior = velocity.float(), target.float(), prior.float()
        delta = (velocity - target).abs().detach()
        squared = (velocity - target) ** 2
        parts: dict[str, torch.Tensor] = {}
        if self.variant == "paper":
            mask = (occlusion if occlusion is not None else prior).detach()
            weight = (1.0 + alpha_paper(step) * mask) * (self.eps + delta) ** 0.8
        else:
            mask = prior  # the release weights by the (frozen) Stage I mask
            weight = ((1.0 + alpha_released(step) * mask) * (delta + 1e-6) ** 1.5).clamp(0.1, 20.0)
        parts["gen"] = (weight * squared).mean()
        total = parts["gen"]
        if occlusion is not None:
            occlusion = occlusion.float()
            parts["distill"] = F.smooth_l1_loss(occlusion, prior)
            parts["sparse"] = occlusion.mean() + self.kl_weight * bernoulli_kl(occlusion, prior).mean()
            total = total + self.distill_weight * parts["distill"] + self.sparse_weight * parts["sparse"]
        if self.variant == "clear_released":
            if noisy is None or sigma is None or clean is None:
                raise ValueError("clear_released needs noisy, sigma and clean for its temporal loss")
            pred_x0 = noisy.float() - sigma.view(-1, 1, 1, 1, 1) * velocity  # x_t = (1-s) x0 + s n, v = n - x0
            parts["temporal"] = temporal_charbonnier(pred_x0, clean)
            lam = self.log_temporal_weight.exp()
            total = total + lam * parts["temporal"] - self.temporal_weight_init * self.log_temporal_weight
        metrics = {name: float(value.detach()) for name, value in parts.items()}
        metrics["loss"] = float(total.detach())
        return total, metrics
