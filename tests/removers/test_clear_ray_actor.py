"""The CLEAR backend inside a Ray actor that asked for the (fake) GPU: it loads once on the
CPU fallback and serves chunks; what it returns equals an in-process remover's output."""

from __future__ import annotations

import numpy as np
import pytest

from clear_ray.config import RemoverConfig


@pytest.mark.slow  # a Ray worker imports torch + DiffSynth: ~20 s on a busy 2-core machine
def test_a_gpu_scheduled_actor_runs_clear_on_its_cpu_fallback(ray_cluster, tiny_clear_model):
    import ray

    from clear_ray.removers import load_remover

    config = RemoverConfig(backend="clear", clear={"model_dir": tiny_clear_model.model_dir,
                                                   "lora": tiny_clear_model.lora_path, "steps": 1})

    @ray.remote(num_gpus=1, num_cpus=1)
    class ClearActor:
        def __init__(self, config: RemoverConfig):
            import torch

            self.remover = load_remover(config, device="cuda" if torch.cuda.is_available() else "cpu")

        def describe(self) -> tuple[str, int, str]:
            return self.remover.device, self.remover.lora_tensors_matched, self.remover.fingerprint()

        def remove(self, frames_thwc_u8: np.ndarray):
            return self.remover.remove(frames_thwc_u8)

    frames = np.random.default_rng(0).integers(0, 256, (5, 48, 64, 3), dtype=np.uint8)
    actor = ClearActor.remote(config)
    device, matched, fingerprint = ray.get(actor.describe.remote(), timeout=300)
    results = ray.get([actor.remove.remote(frames), actor.remove.remote(frames)], timeout=300)
    ray.kill(actor)

    local = load_remover(config, device="cpu")
    assert device == "cpu" and matched == 40 and fingerprint == local.fingerprint()
    expected = local.remove(frames)
    for result in results:
        assert np.array_equal(result.frames_thwc_u8, expected.frames_thwc_u8)
        assert np.array_equal(result.mask_thw_f32, expected.mask_thw_f32)
