"""CLEAR inference on the tiny Fun-Control model: equal to DiffSynth's stock pipeline call,
LoRA effects (fused == CLEAR's unfused PEFT injection, scale 0 == base), the remover's
contract (any size, deterministic, mask) and its input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clear_ray.config import DEFAULT_CLEAR_PROMPT, RemoverConfig
from clear_ray.removers import load_remover
from clear_ray.models.denoise import ClearDenoiser
from clear_ray.models.wan import encode_prompt, load_component, load_pipeline
from clear_ray.removers.clear import video_to_u8
from clear_ray.models.files import locate_model_files
from clear_ray.models.lora import fuse_lora, load_lora
from clear_ray.removers.difference_mask import difference_mask
from clear_ray.testing.tiny_wan import LORA_TARGETS, TinyClearModel

STEPS = 2


@pytest.fixture(scope="module")
def frames_thwc_u8() -> np.ndarray:
    # A smooth scene with a bright "subtitle" bar, 5 frames of 64x48.
    y, x = np.mgrid[0:48, 0:64]
    frame = np.stack([x * 3, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)
    frames = np.stack([np.roll(frame, shift, axis=1) for shift in range(5)])
    frames[:, 36:42, 12:52] = 250
    return frames


def _config(model: TinyClearModel, composite: bool = True, **clear) -> RemoverConfig:
    return RemoverConfig(backend="clear", composite=composite,
                         clear={"model_dir": model.model_dir, "lora": model.lora_path, "steps": STEPS, **clear})


def _denoise(pipe, frames, cfg=1.0, seed=0) -> torch.Tensor:
    context = encode_prompt(pipe, DEFAULT_CLEAR_PROMPT)
    negative = encode_prompt(pipe, "") if cfg != 1.0 else None
    video, _ = ClearDenoiser(pipe, context, negative, steps=STEPS, cfg=cfg, shift=5.0, seed=seed, tiled=True)(frames)
    return video


@pytest.mark.parametrize("cfg", [1.0, 2.5])
def test_our_loop_equals_the_stock_wan_video_pipeline_call(tiny_clear_model, frames_thwc_u8, cfg):
    from PIL import Image

    pipe = load_pipeline(locate_model_files(tiny_clear_model.model_dir), "cpu", torch.float32)
    fuse_lora(pipe.dit, load_lora(tiny_clear_model.lora_path), 1.0)
    ours = _denoise(pipe, frames_thwc_u8, cfg=cfg, seed=7)
    stock = pipe(prompt=DEFAULT_CLEAR_PROMPT, negative_prompt="",
                 control_video=[Image.fromarray(frame) for frame in frames_thwc_u8], seed=7, height=48, width=64,
                 num_frames=5, cfg_scale=cfg, num_inference_steps=STEPS, sigma_shift=5.0, tiled=True,
                 output_type="floatpoint", progress_bar_cmd=lambda steps: steps)
    assert ours.shape == stock.shape == (1, 3, 5, 48, 64)
    assert torch.equal(ours, stock)


def test_lora_changes_the_output_and_scale_zero_reproduces_the_base_model(tiny_clear_model, frames_thwc_u8):
    base_pipe = load_pipeline(locate_model_files(tiny_clear_model.model_dir), "cpu", torch.float32)
    base_u8 = video_to_u8(_denoise(base_pipe, frames_thwc_u8), 64, 48)

    at_zero = load_remover(_config(tiny_clear_model, lora_scale=0.0), device="cpu")
    assert at_zero.lora_tensors_matched == 2 * 2 * len(LORA_TARGETS)
    assert np.array_equal(at_zero.remove(frames_thwc_u8).frames_thwc_u8, base_u8)

    with_lora = load_remover(_config(tiny_clear_model, lora_scale=1.0), device="cpu").remove(frames_thwc_u8)
    assert np.abs(with_lora.frames_thwc_u8.astype(int) - base_u8).mean() > 1.0


def test_fused_lora_equals_clears_unfused_peft_injection(tiny_clear_model, frames_thwc_u8):
    """CLEAR's inference.py injects the LoRA with peft (alpha = scale * rank) and loads the
    stripped checkpoint with strict=False; we fuse W += scale * B A instead."""
    from peft import LoraConfig, inject_adapter_in_model

    files = locate_model_files(tiny_clear_model.model_dir)
    scale, rank = 0.7, tiny_clear_model.lora_rank
    fused_pipe = load_pipeline(files, "cpu", torch.float32)
    fuse_lora(fused_pipe.dit, load_lora(tiny_clear_model.lora_path), scale)

    peft_pipe = load_pipeline(files, "cpu", torch.float32)
    base = _denoise(peft_pipe, frames_thwc_u8)
    config = LoraConfig(r=rank, lora_alpha=scale * rank, target_modules=["q", "k", "v", "o", "ffn.0", "ffn.2"],
                        lora_dropout=0.0, bias="none")
    peft_pipe.dit = inject_adapter_in_model(config, peft_pipe.dit)
    checkpoint = torch.load(tiny_clear_model.lora_path, weights_only=True)["model_state_dict"]
    stripped = {k.replace("pipe.dit.", "").replace("module.", "").replace("_orig_mod.", ""): v
                for k, v in checkpoint.items()}
    _, unexpected = peft_pipe.dit.load_state_dict(stripped, strict=False)
    assert not unexpected

    fused, unfused = _denoise(fused_pipe, frames_thwc_u8), _denoise(peft_pipe, frames_thwc_u8)
    torch.testing.assert_close(fused, unfused, atol=2e-4, rtol=0)
    assert (fused - base).abs().max() > 0.05  # the LoRA matters at this scale


def test_remove_is_deterministic_and_returns_any_size_with_a_soft_mask(tiny_clear_model, frames_thwc_u8):
    remover = load_remover(_config(tiny_clear_model), device="cpu")
    assert remover.name == "clear" and remover.wants_gpu and remover.dtype_name == "float32"
    first, second = remover.remove(frames_thwc_u8), remover.remove(frames_thwc_u8)
    assert np.array_equal(first.frames_thwc_u8, second.frames_thwc_u8)
    assert np.array_equal(first.mask_thw_f32, second.mask_thw_f32)
    assert 0.0 <= first.mask_thw_f32.min() and first.mask_thw_f32.max() <= 1.0
    # The mask compares the output with the decoded control latents (the input as the VAE
    # sees it), not with the input: the VAE's drift cancels.
    assert set(remover.last_timings) == {"frames_in", "vae_encode", "dit", "vae_decode", "vae_decode_reference",
                                         "frames_out"}
    reconstruction_u8 = video_to_u8(remover._denoiser.last_reconstruction, 64, 48)
    assert not np.array_equal(reconstruction_u8, frames_thwc_u8)
    settings = remover.config.clear.mask
    np.testing.assert_array_equal(first.mask_thw_f32, difference_mask(
        frames_thwc_u8, first.frames_thwc_u8, settings, reconstruction_thwc_u8=reconstruction_u8))

    odd_size = np.ascontiguousarray(np.pad(frames_thwc_u8, ((0, 0), (1, 1), (3, 3), (0, 0)), mode="edge"))
    result = remover.remove(odd_size)  # 70x50 runs at 64x48 and comes back at 70x50
    assert result.frames_thwc_u8.shape == odd_size.shape and result.mask_thw_f32.shape == odd_size.shape[:3]


def test_no_composite_gives_an_all_ones_mask(tiny_clear_model, frames_thwc_u8):
    remover = load_remover(_config(tiny_clear_model, composite=False), device="cpu")
    result = remover.remove(frames_thwc_u8)
    assert (result.mask_thw_f32 == 1.0).all()
    assert "vae_decode_reference" not in remover.last_timings  # no mask, no reference decode


def test_bad_chunks_are_rejected_with_one_line(tiny_clear_model, frames_thwc_u8):
    remover = load_remover(_config(tiny_clear_model), device="cpu")
    with pytest.raises(ValueError, match="4n\\+1 frames"):
        remover.remove(frames_thwc_u8[:4])
    with pytest.raises(ValueError, match="uint8"):
        remover.remove(frames_thwc_u8.astype(np.float32))
    with pytest.raises(ValueError, match="too small"):
        remover.remove(frames_thwc_u8[:, :8])


def test_the_text_encoder_is_gone_after_construction(tiny_clear_model):
    remover = load_remover(_config(tiny_clear_model, cfg=2.0), device="cpu")
    pipe = remover._denoiser.pipe
    assert pipe.text_encoder is None and remover._denoiser.negative_context is not None
    dit = load_component(locate_model_files(tiny_clear_model.model_dir), "dit", "cpu", torch.float32)
    assert not torch.equal(pipe.dit.blocks[0].self_attn.q.weight, dit.blocks[0].self_attn.q.weight)  # fused
