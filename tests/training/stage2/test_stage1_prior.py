"""M_prior from a real Stage I run: `train_stage1` (tiny network) on the same make-pairs
pairs, then Stage II with ``--stage1`` on Ray Train together with the latent cache, and the
distillation target shown to be that network's output (another Stage I network, another
target and another L_distill)."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.training.conftest import TINY_MODEL
from tests.training.stage2.conftest import stage2_config

pytestmark = pytest.mark.slow


def _shifted_export(source: str, destination: str) -> None:
    """A copy of a Stage I export whose mask logits are all 3 higher (its last bias)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("runs"))
    tensors = load_file(f"{destination}/stage1.safetensors")
    [bias] = [k for k, v in tensors.items() if k.startswith("mask_head.") and k.endswith(".bias") and v.numel() == 1]
    tensors[bias] = tensors[bias] + 3.0
    save_file(tensors, f"{destination}/stage1.safetensors", metadata={"format": "clear-ray/stage1-occlusion-prior"})


def test_stage1_prior_is_the_distill_target_with_the_latent_cache(ray_cluster, stage2_pairs, stage2_model_dir,
                                                                  tmp_path):
    from clear_ray.config import load_config
    from clear_ray.pairs import read_index
    from clear_ray.training.stage1 import load_prior, predict_masks
    from clear_ray.training.stage1.config import Stage1TrainConfig
    from clear_ray.training.stage1.recipe import train_stage1
    from clear_ray.training.stage2.engine import Stage2Engine
    from clear_ray.training.stage2.latent_cache import encode_latents
    from clear_ray.training.stage2.recipe import train_stage2
    from clear_ray.training.stage2.samples import WindowSampler, pool_to_latent_grid

    # 1. The real Stage I trainer, tiny network, two steps; its export is what --stage1 names.
    stage1 = str(tmp_path / "stage1")
    train_stage1(load_config(Stage1TrainConfig, env={}, overrides={
        "pairs": stage2_pairs, "output": stage1, "batch_size": 2, "max_steps": 2, "model": TINY_MODEL,
        "data.height": 64, "data.width": 96, "optim.lr": 3e-3, "optim.warmup_steps": 1, "run.name": "s1",
        "run.report_every": 1, "run.checkpoint_every": 2, "run.max_failures": 0}))

    # 2. Stage II with that prior on cached latents, through Ray Train.
    cache = str(tmp_path / "cache")
    config = stage2_config(stage2_pairs, stage2_model_dir, str(tmp_path / "out"), max_steps=2, stage1=stage1,
                           latent_cache=cache, **{"objective.prior": "stage1"})
    encode_latents(config, num_gpus=1.0)  # the session cluster's fake GPU
    result = train_stage2(config)
    assert result.step == 2 and all(h["loss_distill"] > 0 for h in result.history)

    # 3. The target of L_distill is the Stage I network's probability on the subtitled
    #    window, max-pooled to the latent grid, also when the latents come from the cache.
    engine = Stage2Engine(config)
    sampler = WindowSampler(read_index(stage2_pairs), frames=config.frames, width=config.width, height=config.height,
                            seed=config.seed, prior="stage1", latent_cache=cache)
    batch = sampler([0, 1])
    assert "clean_latents" in batch and "prior" not in batch  # latents cached, prior computed now
    prior = engine.latents(batch)["prior"]
    network = load_prior(stage1)
    for index in range(2):
        expected = pool_to_latent_grid(predict_masks(network, batch["subtitled_u8"][index].numpy()))
        torch.testing.assert_close(prior[index, 0], torch.from_numpy(expected))
    with torch.no_grad():
        distill = engine.loss(engine.module, batch, 0)[1]["distill"]

    # 4. Another Stage I network (its logits 3 higher) gives another target and L_distill.
    _shifted_export(stage1, str(tmp_path / "stage1-shifted"))
    engine.prior_network = load_prior(str(tmp_path / "stage1-shifted"))
    shifted = engine.latents(batch)["prior"]
    with torch.no_grad():
        shifted_distill = engine.loss(engine.module, batch, 0)[1]["distill"]
    print(f"mean M_prior {prior.mean():.3f} -> {shifted.mean():.3f} with the shifted Stage I; "
          f"L_distill {distill:.4f} -> {shifted_distill:.4f}")
    assert (shifted - prior).mean() > 0.05
    assert shifted_distill != pytest.approx(distill, rel=1e-3)
