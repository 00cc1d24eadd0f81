"""Stage II on Ray Train with the tiny Wan model in the real file layout, on make-pairs pairs."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torch

from tests.training.stage2.conftest import stage2_config

pytestmark = pytest.mark.slow


def _latest_checkpoint(output: str) -> str:
    return sorted(path for path in glob.glob(os.path.join(output, "runs", "t", "checkpoint_*")) if os.path.isdir(path))[-1]


def _fixed_batch_loss(engine, config, positions) -> float:
    """The objective on fixed samples (same windows, noise and timesteps) without grad."""
    from clear_ray.pairs import read_index
    from clear_ray.training.stage2.samples import WindowSampler

    sampler = WindowSampler(read_index(config.pairs), frames=config.frames, width=config.width,
                            height=config.height, seed=config.seed, prior="alpha")
    with torch.no_grad():
        return float(np.mean([engine.loss(engine.module, sampler([p]), 0)[1]["loss"] for p in positions]))


def test_one_worker_loss_falls_checkpoints_are_safe_and_the_export_reproduces_the_trainer(
        ray_cluster, stage2_pairs, stage2_model_dir, tmp_path):
    from safetensors.torch import load_file

    from clear_ray.config import RemoverConfig
    from clear_ray.models.resolution import resize_frames
    from clear_ray.pairs import read_index, read_pair
    from clear_ray.removers import load_remover
    from clear_ray.training.stage2 import checkpoint as checkpoints
    from clear_ray.training.stage2.engine import Stage2Engine
    from clear_ray.training.stage2.recipe import train_stage2

    output = str(tmp_path / "out")
    config = stage2_config(stage2_pairs, stage2_model_dir, output, max_steps=6, batch_size=2)
    result = train_stage2(config)
    assert result.step == 6 and [h["step"] for h in result.history] == [1, 2, 3, 4, 5, 6]

    # Checkpoints hold only trainable tensors and load without unpickling code.
    directory = _latest_checkpoint(output)
    tensors = load_file(os.path.join(directory, "model.safetensors"))
    assert tensors and all(".lora_" in name or name.startswith("model.head.") for name in tensors)
    state = torch.load(os.path.join(directory, "training_state.pt"), weights_only=True)
    assert state["step"] == 6 and "optimizer" in state and "scheduler" in state

    # The loss falls on the samples it trained on (same windows, noise and timesteps).
    engine = Stage2Engine(config)
    before = _fixed_batch_loss(engine, config, range(4))
    checkpoints.load(directory, module=engine.module)
    after = _fixed_batch_loss(engine, config, range(4))
    print(f"loss on trained samples: {before:.4f} -> {after:.4f}")
    assert after < 0.9 * before

    # The exported LoRA, loaded the way `clear-ray remove --backend clear --lora` loads it,
    # denoises a window exactly as the trainer's own (unfused PEFT) model does...
    row = read_index(stage2_pairs)[0]
    window = resize_frames(read_pair(row, list(range(5))).subtitled_thwc_u8, 32, 32)
    trained_video = engine.denoise(window, steps=2, seed=3)
    for key in ("lora.pt", "lora.safetensors"):
        remover = load_remover(RemoverConfig(backend="clear", composite=False, clear={
            "model_dir": stage2_model_dir, "lora": result.exports[key], "steps": 2, "seed": 3,
            "tiled_vae": False}), device="cpu")
        removed_video, _ = remover._denoiser(window)
        torch.testing.assert_close(removed_video, trained_video, rtol=1e-4, atol=1e-4)
    # ...and the LoRA changes the output (a fresh engine's LoRA is zero: the base model).
    base_video = Stage2Engine(config).denoise(window, steps=2, seed=3)
    change = (trained_video - base_video).abs().mean().item()
    print(f"mean |trained - base| on the window: {change:.4f} (of a [-1, 1] range)")
    assert change > 1e-3


def test_two_ddp_workers_equal_one_worker_at_the_same_global_batch(ray_cluster, stage2_pairs, stage2_model_dir,
                                                                    tmp_path):
    from safetensors.torch import load_file

    from clear_ray.training.stage2.recipe import train_stage2

    finals = {}
    for workers in (1, 2):
        output = str(tmp_path / f"w{workers}")
        config = stage2_config(stage2_pairs, stage2_model_dir, output, max_steps=2, batch_size=2,
                               **{"run.workers": workers, "run.checkpoint_every": 2})
        assert config.accumulation == 2 // workers
        train_stage2(config)
        finals[workers] = load_file(os.path.join(_latest_checkpoint(output), "model.safetensors"))
    assert finals[1].keys() == finals[2].keys()
    moved = max((finals[1][k] - finals[2][k]).abs().max().item() for k in finals[1])
    for name in finals[1]:
        torch.testing.assert_close(finals[2][name], finals[1][name], rtol=1e-4, atol=1e-5)
    print(f"1 vs 2 workers: max |difference| of trained tensors {moved:.2e}")
