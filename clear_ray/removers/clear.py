"""CLEAR (arXiv 2603.21901) as a remover: Wan2.1-Fun-V1.1-1.3B-Control + the CLEAR LoRA.

The model code (files -> DiffSynth models, the LoRA, the denoising loop) lives in
``clear_ray.models``, shared with Stage II training; this module only runs it per chunk.
The driver imports this module for ``fingerprint_for`` and must not pay for torch or
DiffSynth, so heavy imports stay inside functions.

One chunk runs exactly as CLEAR's inference.py runs it (see ``clear_ray.models.denoise``).
What differs is only when work happens: the prompt's T5 context is computed once per
actor (then the 11 GB text encoder is freed) and the LoRA is fused into the DiT weights.
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from clear_ray.models.files import clear_fingerprint, locate_model_files, resolve_dtype_name
from clear_ray.removers.base import RemovalResult

if TYPE_CHECKING:
    import torch

    from clear_ray.config import RemoverConfig

log = logging.getLogger(__name__)


class ClearRemover:
    """The CLEAR backend: one pipeline per actor, ``remove`` per chunk."""

    name: ClassVar[str] = "clear"
    wants_gpu: ClassVar[bool] = True

    @classmethod
    def fingerprint_for(cls, config: "RemoverConfig") -> str:
        return clear_fingerprint(config)

    def __init__(self, config: "RemoverConfig", device: str = "cpu"):
        import torch

        from clear_ray.models.denoise import NEGATIVE_PROMPT, ClearDenoiser
        from clear_ray.models.lora import fuse_lora, load_lora
        from clear_ray.models.wan import encode_prompt, load_pipeline

        settings = config.clear
        self.config = config
        self._fingerprint = clear_fingerprint(config)  # also names a missing model dir / LoRA file
        files = locate_model_files(settings.model_dir)
        lora = load_lora(settings.lora)  # a bad LoRA fails in a second, before GBs of weights load
        self.device = str(device)
        self.dtype_name = resolve_dtype_name(settings.dtype, self.device)
        dtype = getattr(torch, self.dtype_name)

        pipe = load_pipeline(files, self.device, dtype)
        context = encode_prompt(pipe, settings.prompt)
        negative_context = encode_prompt(pipe, NEGATIVE_PROMPT) if settings.cfg != 1.0 else None
        pipe.text_encoder = None  # the prompt is constant: its encoder is never needed again
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

        self.lora_tensors_matched = fuse_lora(pipe.dit, lora, settings.lora_scale)
        self.lora_ranks = lora.ranks
        if settings.compile and self.device.startswith("cuda"):
            pipe.compile_pipeline(mode="default", dynamic=True)  # regional: DiTBlock only
        self._denoiser = ClearDenoiser(pipe, context, negative_context, steps=settings.steps, cfg=settings.cfg,
                                       shift=settings.shift, seed=settings.seed, tiled=settings.tiled_vae,
                                       reconstruct=config.composite and settings.mask.compare_to == "reconstruction")
        self.last_timings: dict[str, float] = {}
        log.info("CLEAR ready on %s (%s): %d LoRA tensors matched, fingerprint %s",
                 self.device, self.dtype_name, self.lora_tensors_matched, self._fingerprint)

    def fingerprint(self) -> str:
        return self._fingerprint

    def remove(self, frames_thwc_u8: np.ndarray) -> RemovalResult:
        from clear_ray.models.resolution import model_resolution, resize_frames
        from clear_ray.removers.difference_mask import difference_mask

        frames_thwc_u8 = np.asarray(frames_thwc_u8)
        if frames_thwc_u8.dtype != np.uint8 or frames_thwc_u8.ndim != 4 or frames_thwc_u8.shape[-1] != 3:
            raise ValueError(f"CLEAR takes uint8 (T,H,W,3) frames, got {frames_thwc_u8.dtype} {frames_thwc_u8.shape}")
        num_frames, height, width = frames_thwc_u8.shape[:3]
        if num_frames % 4 != 1:
            raise ValueError(f"CLEAR takes 4n+1 frames per chunk (the VAE compresses time 4x), got {num_frames}")
        model_w, model_h = model_resolution(width, height, self.config.clear.max_area)
        video, timings = self._denoiser(resize_frames(frames_thwc_u8, model_w, model_h))
        output_thwc_u8 = video_to_u8(video, width, height)
        if self.config.composite:
            reconstruction = self._denoiser.last_reconstruction
            mask_thw_f32 = difference_mask(
                frames_thwc_u8, output_thwc_u8, self.config.clear.mask,
                reconstruction_thwc_u8=None if reconstruction is None else video_to_u8(reconstruction, width, height))
        else:
            mask_thw_f32 = np.ones(frames_thwc_u8.shape[:3], dtype=np.float32)
        self.last_timings = timings
        return RemovalResult(frames_thwc_u8=output_thwc_u8, mask_thw_f32=mask_thw_f32)


def video_to_u8(video_bcthw: "torch.Tensor", width: int, height: int) -> np.ndarray:
    """(1, 3, T, h, w) in [-1, 1] -> (T, height, width, 3) uint8: DiffSynth's mapping to
    [0, 255], resized in float, then rounded (DiffSynth truncates: half a level darker).
    Frame by frame, so a 1080p chunk never exists in float32 at once."""
    from clear_ray.models.resolution import resize_frames

    num_frames = video_bcthw.shape[2]
    output_thwc_u8 = np.empty((num_frames, height, width, 3), np.uint8)
    for index in range(num_frames):
        frame_hwc = (video_bcthw[0, :, index].permute(1, 2, 0).float().cpu().numpy() + 1.0) * np.float32(127.5)
        resized_hwc = resize_frames(frame_hwc[None], width, height)[0]
        output_thwc_u8[index] = np.clip(np.rint(resized_hwc), 0, 255)
    return output_thwc_u8
