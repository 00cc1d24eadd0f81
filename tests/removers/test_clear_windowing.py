"""CLEAR's latent-space sliding windows (``clear.windowing: latent``) on the tiny model:
equal to DiffSynth's stock call with ``sliding_window_size/stride`` (what CLEAR's
``--use_sliding_window`` runs), not the pixel cross-fade where windows overlap, bit-equal to
one window when the chunk fits in one, and part of the fingerprint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clear_ray.config import DEFAULT_CLEAR_PROMPT, ConfigError, RemoverConfig, load_config
from clear_ray.models.denoise import ClearDenoiser
from clear_ray.models.files import locate_model_files
from clear_ray.models.wan import encode_prompt, load_pipeline
from clear_ray.removers import load_remover
from clear_ray.removers.clear import ClearRemover

STEPS = 2
FRAMES = 17  # 5 latent frames: windows of 3 latent frames, stride 2 -> [0, 3) and [2, 5)


@pytest.fixture(scope="module")
def clip_thwc_u8() -> np.ndarray:
    y, x = np.mgrid[0:32, 0:48]
    frame = np.stack([x * 5, y * 7, (x + y) * 3], axis=-1).astype(np.uint8)
    frames = np.stack([np.roll(frame, 2 * shift, axis=1) for shift in range(FRAMES)])
    frames[:, 22:27, 8:40] = 250
    return frames


def _config(model, **clear) -> RemoverConfig:
    return RemoverConfig(backend="clear", clear={"model_dir": model.model_dir, "lora": model.lora_path,
                                                 "steps": STEPS, **clear})


def test_latent_windows_equal_diffsynths_sliding_window_call(tiny_clear_model, clip_thwc_u8):
    from PIL import Image

    pipe = load_pipeline(locate_model_files(tiny_clear_model.model_dir), "cpu", torch.float32)
    context = encode_prompt(pipe, DEFAULT_CLEAR_PROMPT)
    ours, _ = ClearDenoiser(pipe, context, None, steps=STEPS, cfg=1.0, shift=5.0, seed=3, tiled=True,
                            sliding_window=(3, 2))(clip_thwc_u8)
    stock = pipe(prompt=DEFAULT_CLEAR_PROMPT, control_video=[Image.fromarray(f) for f in clip_thwc_u8], seed=3,
                 height=32, width=48, num_frames=FRAMES, cfg_scale=1.0, num_inference_steps=STEPS, sigma_shift=5.0,
                 tiled=True, sliding_window_size=3, sliding_window_stride=2, output_type="floatpoint",
                 progress_bar_cmd=lambda steps: steps)
    assert ours.shape == stock.shape == (1, 3, FRAMES, 32, 48)
    assert torch.equal(ours, stock)


def test_latent_windowing_is_not_the_pixel_cross_fade_and_one_window_equals_pixel(tiny_clear_model, clip_thwc_u8):
    latent = load_remover(_config(tiny_clear_model, windowing="latent", latent_window=3, latent_stride=2))
    pixel = load_remover(_config(tiny_clear_model))
    latent_u8 = latent.remove(clip_thwc_u8).frames_thwc_u8.astype(np.int16)
    # Pixel windowing as the job runs it: two 9-frame windows sharing frame 8.
    first = pixel.remove(clip_thwc_u8[:9])
    first_u8 = first.frames_thwc_u8.astype(np.int16)
    second_u8 = pixel.remove(clip_thwc_u8[8:]).frames_thwc_u8.astype(np.int16)
    # Latent frame 2 (video frames 5-8) is where the latent windows overlap.
    assert np.abs(latent_u8[5:9] - first_u8[5:9]).mean() > 1.0
    assert np.abs(latent_u8[8] - (first_u8[8] + second_u8[8]) / 2).mean() > 1.0

    # A chunk that fits in one latent window (9 frames = 3 latent frames) is that window,
    # weight 1: bit-equal to pixel windowing.
    single = latent.remove(clip_thwc_u8[:9])
    assert np.array_equal(single.frames_thwc_u8, first.frames_thwc_u8)
    assert np.array_equal(single.mask_thw_f32, first.mask_thw_f32)


def test_windowing_is_in_the_fingerprint_and_pixel_ignores_the_latent_knobs(tiny_clear_model):
    pixel = ClearRemover.fingerprint_for(_config(tiny_clear_model))
    # Under pixel windowing the latent knobs change nothing, so they do not change the key.
    assert ClearRemover.fingerprint_for(_config(tiny_clear_model, latent_window=9)) == pixel
    latent = ClearRemover.fingerprint_for(_config(tiny_clear_model, windowing="latent"))
    assert latent != pixel
    assert ClearRemover.fingerprint_for(_config(tiny_clear_model, windowing="latent", latent_stride=17)) != latent
    assert ClearRemover.fingerprint_for(_config(tiny_clear_model, windowing="latent", latent_window=20)) != latent


def test_windows_with_gaps_are_rejected():
    with pytest.raises(ConfigError, match="latent_stride: .*latent_window"):
        load_config(RemoverConfig, overrides={"clear.latent_window": 4, "clear.latent_stride": 5})
