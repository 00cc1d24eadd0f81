"""Stage II head and objectives against the paper's formulas, on the tiny DiT (no Ray)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from clear_ray.training.stage2.losses import Stage2Objective, alpha_paper, alpha_released, bernoulli_kl


def _tensors(seed=0, shape=(1, 16, 2, 4, 4)):
    generator = torch.Generator().manual_seed(seed)
    velocity = torch.randn(shape, generator=generator, requires_grad=True)
    target = torch.randn(shape, generator=generator)
    occlusion = torch.rand((shape[0], 1, *shape[2:]), generator=generator).requires_grad_(True)
    prior = (torch.rand((shape[0], 1, *shape[2:]), generator=generator) > 0.7).float()
    return velocity, target, occlusion, prior


def test_paper_objective_is_the_papers_formula_with_detached_weights():
    velocity, target, occlusion, prior = _tensors()
    step = 7
    total, parts = Stage2Objective("paper")(velocity=velocity, target=target, occlusion=occlusion, prior=prior, step=step)
    a_k = 5 + 10 * abs(math.sin(2 * math.pi * step / 40))
    delta = (velocity - target).abs().detach()
    weight = (1 + a_k * occlusion.detach()) * (1e-3 + delta) ** 0.8
    l_gen = (weight * (velocity - target) ** 2).mean()
    l_distill = F.smooth_l1_loss(occlusion, prior)
    p, q = occlusion.clamp(1e-6, 1 - 1e-6), prior.clamp(1e-6, 1 - 1e-6)
    kl = (p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).mean()
    expected = l_distill + l_gen + 0.1 * (occlusion.mean() + 0.5 * kl)
    torch.testing.assert_close(total, expected)
    assert parts["gen"] == pytest.approx(float(l_gen.detach()), rel=1e-5)

    # M reaches L_gen only through nothing (detached inside w): its gradient is the head losses'.
    total.backward()
    head_only = l_distill + 0.1 * (occlusion.mean() + 0.5 * kl)
    expected_grad, = torch.autograd.grad(head_only, occlusion)
    torch.testing.assert_close(occlusion.grad, expected_grad)


def test_alpha_schedules():
    assert alpha_paper(0) == 5 and alpha_paper(10) == pytest.approx(15) and alpha_paper(20) == pytest.approx(5)
    assert [alpha_released(k) for k in (0, 5, 10, 15, 20)] == [5, 10, 15, 10, 5]
    assert bernoulli_kl(torch.tensor(0.3), torch.tensor(0.3)).item() == pytest.approx(0, abs=1e-7)


def test_released_variant_clamps_its_weight_and_learns_the_temporal_weight():
    velocity, target, _, prior = _tensors(1)
    objective = Stage2Objective("clear_released")
    noisy, sigma, clean = torch.randn_like(velocity), torch.tensor([0.4]), torch.randn_like(velocity)
    total, parts = objective(velocity=velocity, target=target, occlusion=None, prior=prior, step=5, noisy=noisy,
                             sigma=sigma, clean=clean)
    delta = (velocity - target).abs().detach()
    weight = ((1 + 10 * prior) * (delta + 1e-6) ** 1.5).clamp(0.1, 20)
    assert parts["gen"] == pytest.approx(float((weight * (velocity - target) ** 2).mean().detach()), rel=1e-5)
    assert parts["temporal"] > 0 and set(parts) == {"gen", "temporal", "loss"}
    total.backward()
    assert objective.log_temporal_weight.grad is not None and velocity.grad is not None


def test_head_starts_flat_and_only_lora_and_head_train(tmp_path):
    from clear_ray.testing.tiny_wan import TINY_DIT, build_tiny_dit
    from clear_ray.training.stage2.config import Stage2Config
    from clear_ray.training.stage2.model import build_stage2_model, parameter_counts

    config = Stage2Config(pairs="p", model_dir=tmp_path, output="o", lora={"rank": 4, "alpha": 4.0},
                          head={"block": 0})
    model = build_stage2_model(build_tiny_dit(), config)
    latents = torch.randn(1, 16, 2, 4, 4)
    control = {"y": torch.randn(1, 32, 2, 4, 4), "clip_feature": torch.zeros(1, 257, 1280)}
    context = torch.randn(1, 8, TINY_DIT["text_dim"])
    velocity, occlusion = model.train()(latents, torch.tensor([500.0]), context, control, gradient_checkpointing=True)
    assert velocity.shape == latents.shape and occlusion.shape == (1, 1, 2, 4, 4)
    torch.testing.assert_close(occlusion, torch.full_like(occlusion, torch.sigmoid(torch.tensor(-2.0)).item()))
    (velocity.square().mean() + occlusion.mean()).backward()
    trained = {name for name, p in model.named_parameters() if p.grad is not None}
    assert trained and all(".lora_" in name or name.startswith("head.") for name in trained)
    # rank 4 on 2 blocks of dim 64, ffn 128: 8 attention projections 4*(64+64), ffn.0 and ffn.2 4*(64+128)
    assert parameter_counts(model) == {"lora": 2 * (8 * 4 * 128 + 2 * 4 * 192), "head": 9 * 64 * 64 + 64 + 65,
                                       "trainable": 11264 + 36993, "frozen": parameter_counts(model)["frozen"]}
