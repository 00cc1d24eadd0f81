"""FSDP (torch FSDP2 over gloo on CPU) trains exactly what one worker trains, writes the
same whole-tensor checkpoint, and resumes from it; gradient checkpointing on throughout."""

from __future__ import annotations

import glob
import os

import pytest
import torch

from tests.training.stage2.conftest import stage2_config

pytestmark = pytest.mark.slow


def _checkpoint(output: str, step: int) -> tuple[dict, dict]:
    """(trainable tensors, optimizer state) of the run's checkpoint at ``step``."""
    from safetensors.torch import load_file

    for directory in filter(os.path.isdir, glob.glob(os.path.join(output, "runs", "t", "checkpoint_*"))):
        state = torch.load(os.path.join(directory, "training_state.pt"), weights_only=True)
        if state["step"] == step:
            return load_file(os.path.join(directory, "model.safetensors")), state["optimizer"]
    raise AssertionError(f"no checkpoint of step {step} under {output}")


def _assert_same(one: tuple[dict, dict], other: tuple[dict, dict]) -> float:
    (tensors, optimizer), (other_tensors, other_optimizer) = one, other
    assert tensors.keys() == other_tensors.keys()
    for name in tensors:
        torch.testing.assert_close(other_tensors[name], tensors[name], rtol=1e-4, atol=1e-5)
    assert optimizer["param_groups"] == other_optimizer["param_groups"]
    assert optimizer["state"].keys() == other_optimizer["state"].keys()
    for index, values in optimizer["state"].items():
        assert values.keys() == other_optimizer["state"][index].keys()
        for key, value in values.items():  # step, exp_avg, exp_avg_sq: whole tensors, not shards
            torch.testing.assert_close(other_optimizer["state"][index][key], value, rtol=1e-4, atol=1e-6)
    return max((tensors[k] - other_tensors[k]).abs().max().item() for k in tensors)


def test_two_fsdp_workers_equal_one_worker_and_resume_from_their_checkpoint(ray_cluster, stage2_pairs,
                                                                            stage2_model_dir, tmp_path):
    from clear_ray.training.stage2.recipe import train_stage2

    def run(output: str, workers: int, max_steps: int, strategy: str):
        config = stage2_config(stage2_pairs, stage2_model_dir, output, max_steps=max_steps, batch_size=2,
                               strategy=strategy, gradient_checkpointing=True,
                               **{"run.workers": workers, "run.checkpoint_every": 1,
                                  "optim.min_lr_ratio": 1.0})  # a constant lr: max_steps only says when to stop
        return train_stage2(config)

    # 1. One worker (accumulating 2 micro-batches) for 3 steps: the reference at steps 2 and 3.
    single = str(tmp_path / "single")
    run(single, 1, 3, "ddp")
    # 2. Two FSDP workers for 2 steps: the same tensors and a checkpoint of whole tensors in
    #    the single worker's layout (keys, shapes, optimizer indices), so either resumes it.
    sharded = str(tmp_path / "fsdp")
    result = run(sharded, 2, 2, "fsdp")
    assert result.history[-1]["sharded"] == 1, "the two workers did not shard the model"
    moved = _assert_same(_checkpoint(single, 2), _checkpoint(sharded, 2))
    # 3. Running again to step 3 resumes the FSDP run from its own checkpoint (whole tensors
    #    re-sharded into the optimizer), and lands where the uninterrupted single worker did.
    result = run(sharded, 2, 3, "fsdp")
    assert result.history[-1]["resumed_from_step"] == 2 and result.step == 3
    resumed = _assert_same(_checkpoint(single, 3), _checkpoint(sharded, 3))
    print(f"1 worker vs 2 FSDP workers: max |difference| of trained tensors {moved:.2e} at step 2, "
          f"{resumed:.2e} at step 3 after the resume")
