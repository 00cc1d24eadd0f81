"""The CLEAR remover's frame work in torch on its device (run here on the CPU) against the
OpenCV/numpy code it replaced: uint8 -> model floats bit-equal to DiffSynth's
preprocess_video; resizing within one level of OpenCV on < 1 % of samples (bit-equal for
integer shrink factors and same-size output); the difference mask exactly 0 and exactly 1
where the CPU mask is, and equal elsewhere to 1e-6."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clear_ray.config import DifferenceMaskConfig
from clear_ray.models.device_frames import model_input, resize_frames_u8, video_to_u8
from clear_ray.models.resolution import resize_frames
from clear_ray.removers.clear import video_to_u8 as cpu_video_to_u8
from clear_ray.removers.difference_mask import difference_mask
from clear_ray.removers.difference_mask_device import difference_mask_device


def _scene(frames: int = 7, height: int = 90, width: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x * y) % 256], axis=-1).astype(np.uint8)
    clip = np.stack([np.roll(base, 3 * t, axis=1) for t in range(frames)])
    clip[:, height // 3:height // 2, width // 4:width // 2] = rng.integers(0, 256, (height // 2 - height // 3,
                                                                                    width // 2 - width // 4, 3))
    return clip


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_model_input_is_diffsynths_preprocess_video_bit_for_bit(dtype):
    from diffsynth.pipelines.wan_video import WanVideoPipeline

    pipe = WanVideoPipeline(device="cpu", torch_dtype=dtype)
    clip = _scene(frames=5, height=32, width=48)
    assert torch.equal(model_input(pipe, clip), pipe.preprocess_video(clip))
    assert torch.equal(model_input(pipe, torch.from_numpy(clip)), pipe.preprocess_video(clip))


@pytest.mark.parametrize("width, height", [(464, 256), (240, 135), (160, 90), (448, 256),  # shrink
                                           (500, 300), (481, 271), (960, 540)])  # enlarge
def test_resize_on_the_device_is_opencvs_within_one_level(width, height):
    clip = _scene(frames=3, height=270, width=480)
    ours = resize_frames_u8(torch.from_numpy(clip), width, height).numpy()
    opencv = resize_frames(clip, width, height)
    difference = np.abs(ours.astype(np.int16) - opencv)
    assert ours.shape == opencv.shape and difference.max() <= 1 and (difference > 0).mean() < 0.01
    if 480 % width == 0 and 270 % height == 0:  # integer area factors: OpenCV's box average exactly
        assert difference.max() == 0


@pytest.mark.parametrize("width, height", [(64, 48), (70, 50), (1280, 720)])
def test_video_to_u8_on_the_device_matches_the_cpu_version(width, height):
    generator = torch.Generator().manual_seed(0)
    video = torch.rand((1, 3, 5, 48, 64), generator=generator) * 2.2 - 1.1  # past [-1, 1]: clipping too
    ours, cpu = video_to_u8(video, width, height).numpy(), cpu_video_to_u8(video, width, height)
    difference = np.abs(ours.astype(np.int16) - cpu)
    if (width, height) == (64, 48):
        assert difference.max() == 0
    assert difference.max() <= 1 and (difference > 0).mean() < 0.001


@pytest.mark.parametrize("settings", [
    DifferenceMaskConfig(),
    DifferenceMaskConfig(compare_to="input"),
    DifferenceMaskConfig(smoothing_px=1, threshold=10.0, temporal_gap=0),
    DifferenceMaskConfig(smoothing_px=3, dilate_px=0, feather_px=7, temporal_radius=0),
    DifferenceMaskConfig(reconstruction_threshold=4.0, dilate_px=5, feather_px=0, temporal_gap=2),
], ids=["default", "input", "no-smoothing", "feather-only", "dilate-only"])
def test_the_mask_on_the_device_equals_the_cpu_mask(settings):
    rng = np.random.default_rng(1)
    source = _scene(frames=9)
    reconstruction = np.clip(source.astype(np.int16) + rng.integers(-4, 5, source.shape), 0, 255).astype(np.uint8)
    output = reconstruction.copy()
    output[:, 60:72, 30:130] = 235  # a removed line of text ...
    output[4, 60:72, 30:130] = reconstruction[4, 60:72, 30:130]  # ... missed in one frame
    output[:, 10:20, 10:20] = np.clip(reconstruction[:, 10:20, 10:20].astype(np.int16) + 10, 0, 255)  # at threshold
    for reference in (reconstruction, None):
        cpu = difference_mask(source, output, settings, reconstruction_thwc_u8=reference)
        ours = difference_mask_device(torch.from_numpy(source), torch.from_numpy(output), settings,
                                      None if reference is None else torch.from_numpy(reference)).numpy()
        assert ours.dtype == np.float32 and ours.shape == cpu.shape
        assert np.array_equal(ours == 0, cpu == 0) and np.array_equal(ours == 1, cpu == 1)
        np.testing.assert_allclose(ours, cpu, rtol=0, atol=1e-6)
        assert 0 < (cpu > 0).mean() < 1  # the case is not trivial
