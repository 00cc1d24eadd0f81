"""The latent cache (a Ray Data job on GPU-scheduled actors) gives training the same inputs as
encoding on the fly, and a re-run skips what is there."""

from __future__ import annotations

import pytest
import torch

from tests.training.stage2.conftest import stage2_config

pytestmark = pytest.mark.slow


def test_cached_latents_give_the_same_loss_as_on_the_fly_encoding(ray_cluster, stage2_pairs, stage2_model_dir,
                                                                  tmp_path):
    from clear_ray.pairs import read_index
    from clear_ray.training.stage2.engine import Stage2Engine
    from clear_ray.training.stage2.latent_cache import check_cache, encode_latents
    from clear_ray.training.stage2.samples import WindowSampler

    cache = str(tmp_path / "cache")
    config = stage2_config(stage2_pairs, stage2_model_dir, str(tmp_path / "out"), latent_cache=cache)
    counts = encode_latents(config, num_gpus=1.0, actors=1)  # the session cluster's fake GPU
    rows = read_index(stage2_pairs)
    assert counts == {"pairs": len(rows), "written": len(rows), "skipped": 0}
    assert encode_latents(config, num_gpus=1.0)["skipped"] == len(rows)
    check_cache(config)
    with pytest.raises(ValueError, match="other frames"):
        check_cache(stage2_config(stage2_pairs, stage2_model_dir, "o", latent_cache=cache, frames=9))

    fly_config = stage2_config(stage2_pairs, stage2_model_dir, str(tmp_path / "out"))
    cached, fly = Stage2Engine(config), Stage2Engine(fly_config)
    assert cached.pipe.vae is None and cached.pipe.text_encoder is None  # training reads latents only
    torch.testing.assert_close(cached.context, fly.context)
    for position in (0, 1):
        kwargs = dict(frames=5, width=32, height=32, seed=0, prior="alpha")
        from_cache = WindowSampler(rows, latent_cache=cache, **kwargs)([position])
        on_the_fly = WindowSampler(rows, **kwargs)([position])
        with torch.no_grad():
            loss_cached = cached.loss(cached.module, from_cache, 0)[1]
            loss_fly = fly.loss(fly.module, on_the_fly, 0)[1]
        for name in loss_fly:
            assert loss_cached[name] == pytest.approx(loss_fly[name], rel=1e-5, abs=1e-6)
