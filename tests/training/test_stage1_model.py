"""The Stage I network and losses at toy size: shapes, loss behaviour, learning, checkpoints."""

import numpy as np
import pytest
import torch

from clear_ray.training.checkpoints import load_training_state, save_training_state
from clear_ray.training.stage1.config import BackboneConfig, Stage1LossConfig, Stage1ModelConfig
from clear_ray.training.stage1.losses import (Stage1Objective, UncertaintyWeighting, dice_loss, focal_loss,
                                              iou_loss, orthogonality_loss)
from clear_ray.training.stage1.model import OcclusionPrior

TINY = Stage1ModelConfig(backbone=BackboneConfig(block="basic", layers=(1, 1, 1, 1), width=8),
                         fpn_channels=16, feature_channels=16)


def _batch(seed=0, b=2, h=64, w=96):
    """Clean noise frames with a bright 'subtitle' bar burned into the lower third."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(b, 3, h, w, generator=g) * 0.6
    target = torch.zeros(b, 1, h, w)
    for i in range(b):
        top = int(torch.randint(h // 2, h - 12, (1,), generator=g))
        left = int(torch.randint(0, w // 3, (1,), generator=g))
        target[i, :, top:top + 8, left:left + w // 2] = 1
    subtitled = clean * (1 - target) + target
    return subtitled, clean, target


def test_dual_encoders_fpn_and_heads_have_the_paper_shape():
    model = OcclusionPrior(TINY)
    out = model(torch.rand(2, 3, 64, 96))
    assert out["mask_logits"].shape == (2, 1, 64, 96)
    assert out["reconstruction"].shape == (2, 3, 64, 96)
    assert out["content"].shape == out["subtitle"].shape == (2, 16, 16, 24)
    assert float(out["reconstruction"].detach().abs().max()) <= 1
    # Two encoders with their own weights, fused by torchvision's FPN.
    assert model.content_encoder is not model.subtitle_encoder
    assert type(model.fpn).__name__ == "FeaturePyramidNetwork"
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.rand(1, 3, 60, 96))


def test_resnet50_default_matches_torchvision_names_and_loads_imagenet_file(tmp_path):
    import torchvision

    reference = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)
    config = Stage1ModelConfig(backbone=BackboneConfig(norm="frozen_batch", imagenet_weights=path))
    model = OcclusionPrior(config)
    assert model.content_encoder.channels == [256, 512, 1024, 2048]
    assert torch.equal(model.subtitle_encoder.layer3[2].conv2.weight, reference.layer3[2].conv2.weight)
    with pytest.raises(ValueError, match="frozen_batch"):
        BackboneConfig(imagenet_weights=path)  # group norm cannot take BatchNorm statistics


def test_mask_losses_reward_the_right_mask():
    target = torch.zeros(2, 1, 32, 32)
    target[:, :, 20:26, 4:28] = 1
    good, bad = target * 16 - 8, torch.full_like(target, -8.0)
    for loss in (lambda l: focal_loss(l, target, 0.85, 2.0), lambda l: dice_loss(torch.sigmoid(l), target),
                 lambda l: iou_loss(torch.sigmoid(l), target)):
        assert loss(good).shape == (2,)
        assert float(loss(good).max()) < 0.05 < float(loss(bad).min())
    # alpha 0.85 weighs a missed text pixel more than a false alarm of the same confidence.
    one = torch.ones(1, 1, 1, 1)
    assert float(focal_loss(-one, one, 0.85, 2.0)[0]) > float(focal_loss(one, 0 * one, 0.85, 2.0)[0])


def test_orthogonality_and_uncertainty_weighting():
    a = torch.zeros(1, 2, 4, 4)
    a[:, 0] = 1
    b = torch.zeros(1, 2, 4, 4)
    b[:, 1] = 1
    assert float(orthogonality_loss(a, b)[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(orthogonality_loss(a, -a)[0]) == pytest.approx(1.0, abs=1e-6)
    weighting = UncertaintyWeighting((2.0, 0.5, 0.3))
    assert weighting.weights() == pytest.approx([2.0, 0.5, 0.3])
    total = weighting([torch.tensor(1.0), torch.tensor(1.0), torch.tensor(1.0)])
    assert float(total) == pytest.approx(2.8 - sum(np.log([2.0, 0.5, 0.3])), rel=1e-5)


def test_a_few_steps_learn_the_mask_and_a_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    objective = Stage1Objective(OcclusionPrior(TINY), Stage1LossConfig())
    optimizer = torch.optim.AdamW(objective.parameters(), lr=3e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    subtitled, clean, target = _batch()
    keep = torch.ones(2)
    losses = []
    for _ in range(30):
        parts = objective(subtitled, clean, target, keep)
        optimizer.zero_grad()
        parts["total"].backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(parts["mask"]))
    assert losses[-1] < 0.5 * losses[0]
    probability = objective.network.predict_probabilities(subtitled)
    iou = float(((probability > 0.5) & (target[:, 0] > 0)).sum() / ((probability > 0.5) | (target[:, 0] > 0)).sum())
    assert iou > 0.5

    save_training_state(str(tmp_path), model=objective, optimizer=optimizer, scheduler=scheduler, step=30,
                        extra={"note": "x"})
    expected_next = torch.rand(3)
    # Everything loads without unpickling code.
    state = torch.load(tmp_path / "training_state.pt", weights_only=True)
    assert state["step"] == 30
    fresh = Stage1Objective(OcclusionPrior(TINY), Stage1LossConfig())
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=3e-3)
    fresh_scheduler = torch.optim.lr_scheduler.LambdaLR(fresh_optimizer, lambda step: 1.0)
    step, extra = load_training_state(str(tmp_path), model=fresh, optimizer=fresh_optimizer,
                                      scheduler=fresh_scheduler)
    assert (step, extra) == (30, {"note": "x"}) and fresh_scheduler.last_epoch == 30
    assert torch.equal(torch.rand(3), expected_next)  # the RNG continues where it was saved
    for p, q in zip(objective.parameters(), fresh.parameters()):
        assert torch.equal(p, q)
    assert fresh_optimizer.state_dict()["state"][0]["exp_avg"].equal(optimizer.state_dict()["state"][0]["exp_avg"])
