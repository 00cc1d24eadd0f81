"""CLEAR (arXiv 2603.21901) as a remover: Wan2.1-Fun-V1.1-1.3B-Control + the CLEAR LoRA.

The model code (files -> DiffSynth models, the LoRA, the denoising loop) lives in
``clear_ray.models``, shared with Stage II training; this module only runs it per chunk.
The driver imports this module for ``fingerprint_for`` and must not pay for torch or
DiffSynth, so heavy imports stay inside functions.

One chunk runs exactly as CLEAR's inference.py runs it (see ``clear_ray.models.denoise``).
What differs is only when work happens: the prompt's T5 context is computed once per
actor (then the 11 GB text encoder is freed) and the LoRA is fused into the DiT weights;
and, on a GPU, the fast path of ``clear_ray.models.fast_path`` (fastest exact attention
kernel, float32 RoPE, static-shape compilation, untiled VAE where it fits). The chunk is
uploaded once as uint8; resizing, uint8 <-> float and the difference mask run on the
model's device (``models.device_frames``, ``difference_mask_device``), so a GPU actor
does not wait for OpenCV (``resize: cover_crop``, the fidelity option, stays on the CPU).
The actor decodes the next chunk while this one is on the model (``overlap_decode``).

``windowing: latent`` is CLEAR's ``--use_sliding_window`` inside a chunk: DiffSynth's
temporal tiler over latent windows (see ``clear_ray.models.denoise``).

``fingerprint()`` is the settings' fingerprint (what the driver computes) plus what this
actor resolved at run time: device kind, dtype, attention kernel, RoPE precision, VAE
tiling. Staged chunks carry it, so a resumed job on other hardware recomputes instead of
mixing fp32-CPU and bf16-GPU chunks in one video.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from clear_ray.models.files import clear_fingerprint, locate_model_files, resolve_dtype_name
from clear_ray.removers.base import RemovalResult

if TYPE_CHECKING:
    import torch

    from clear_ray.config import RemoverConfig
    from clear_ray.models.resolution import CoverCrop

log = logging.getLogger(__name__)


class ClearRemover:
    """The CLEAR backend: one pipeline per actor, ``remove`` per chunk."""

    name: ClassVar[str] = "clear"
    wants_gpu: ClassVar[bool] = True
    # The actor decodes (and stages) one chunk while another is on the model.
    overlap_decode: ClassVar[bool] = True

    @classmethod
    def fingerprint_for(cls, config: "RemoverConfig") -> str:
        return clear_fingerprint(config)

    def __init__(self, config: "RemoverConfig", device: str = "cpu"):
        import torch

        from clear_ray.models.lora import fuse_lora, load_lora
        from clear_ray.models.wan import load_pipeline

        settings = config.clear
        files = locate_model_files(settings.model_dir)
        settings_fingerprint = clear_fingerprint(config)  # names a missing model dir / LoRA file first
        lora = load_lora(settings.lora)  # a bad LoRA fails in a second, before GBs of weights load
        dtype = getattr(torch, resolve_dtype_name(settings.dtype, str(device)))
        pipe = load_pipeline(files, str(device), dtype)
        self.lora_tensors_matched = fuse_lora(pipe.dit, lora, settings.lora_scale)
        self.lora_ranks = lora.ranks
        self._prepare(config, pipe, str(device), settings_fingerprint)

    @classmethod
    def from_pipeline(cls, config: "RemoverConfig", pipe: "object", device: str) -> "ClearRemover":
        """A remover around an already assembled pipeline whose DiT carries its LoRA
        (benchmarks build random real-size models straight on the GPU)."""
        remover = cls.__new__(cls)
        remover.lora_tensors_matched, remover.lora_ranks = 0, ()
        remover._prepare(config, pipe, str(device), settings_fingerprint="in-memory pipeline")
        return remover

    def _prepare(self, config: "RemoverConfig", pipe: "object", device: str, settings_fingerprint: str) -> None:
        """Everything after the weights are loaded: the prompt once, the fast path, the loop."""
        import torch

        from clear_ray.models.denoise import NEGATIVE_PROMPT, ClearDenoiser
        from clear_ray.models.wan import encode_prompt

        settings = config.clear
        self.config = config
        self._fingerprint = settings_fingerprint
        self.device = device
        self.dtype_name = str(pipe.torch_dtype).removeprefix("torch.")
        context = encode_prompt(pipe, settings.prompt)
        negative_context = encode_prompt(pipe, NEGATIVE_PROMPT) if settings.cfg != 1.0 else None
        pipe.text_encoder = None  # the prompt is constant: its encoder is never needed again
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
        self.runtime = self._fast_path(pipe, settings)
        self._denoiser = ClearDenoiser(pipe, context, negative_context, steps=settings.steps, cfg=settings.cfg,
                                       shift=settings.shift, seed=settings.seed, tiled=self.runtime["vae_tiled"],
                                       reconstruct=config.composite and settings.mask.compare_to == "reconstruction",
                                       sliding_window=((settings.latent_window, settings.latent_stride)
                                                       if settings.windowing == "latent" else None))
        self._runtime_fingerprint = runtime_fingerprint(self._fingerprint, self.runtime)
        self.last_timings: dict[str, float] = {}
        log.info("CLEAR ready on %s: %s, %d LoRA tensors matched, fingerprint %s",
                 self.device, self.runtime, self.lora_tensors_matched, self._runtime_fingerprint)

    def _fast_path(self, pipe, settings) -> dict:
        """Set up the GPU fast path and return what was resolved (see fast_path)."""
        from clear_ray.models.fast_path import attention_backend, compile_dit_static, resolve_vae_tiling, use_float32_rope

        on_cuda = self.device.startswith("cuda")
        float32_rope = settings.fast_rope and on_cuda
        use_float32_rope(float32_rope)
        if settings.compile and on_cuda:
            compile_dit_static(pipe)  # regional: DiTBlock only
        attention = pipe.dit.blocks[0].self_attn
        return {
            "device": self.device.split(":")[0], "dtype": self.dtype_name,
            "attention": attention_backend(self.device, pipe.torch_dtype, attention.num_heads, attention.head_dim,
                                           tokens=1024),
            "rope": "float32" if float32_rope else "float64",
            # The largest window this remover can get decides the tiling once, for every window.
            "vae_tiled": resolve_vae_tiling(settings.tiled_vae, self.device, settings.max_area),
            "compiled": bool(settings.compile and on_cuda),
        }

    def fingerprint(self) -> str:
        """The settings' fingerprint and what this actor resolved at run time (dtype,
        attention kernel, RoPE precision, VAE tiling)."""
        return self._runtime_fingerprint

    def remove(self, frames_thwc_u8: np.ndarray) -> RemovalResult:
        from clear_ray.models.denoise import PhaseTimer
        from clear_ray.models.device_frames import as_device_u8, resize_frames_u8
        from clear_ray.models.device_frames import video_to_u8 as video_to_device_u8
        from clear_ray.models.fast_path import attention_kernels
        from clear_ray.models.resolution import CoverCrop, model_resolution
        from clear_ray.removers.difference_mask_device import difference_mask_device

        frames_thwc_u8 = np.asarray(frames_thwc_u8)
        if frames_thwc_u8.dtype != np.uint8 or frames_thwc_u8.ndim != 4 or frames_thwc_u8.shape[-1] != 3:
            raise ValueError(f"CLEAR takes uint8 (T,H,W,3) frames, got {frames_thwc_u8.dtype} {frames_thwc_u8.shape}")
        num_frames, height, width = frames_thwc_u8.shape[:3]
        if num_frames % 4 != 1:
            raise ValueError(f"CLEAR takes 4n+1 frames per chunk (the VAE compresses time 4x), got {num_frames}")
        model_w, model_h = model_resolution(width, height, self.config.clear.max_area)
        if self.config.clear.resize == "cover_crop":
            return self._remove_cover_crop(frames_thwc_u8, CoverCrop(width, height, model_w, model_h))
        # Everything between the upload of the uint8 chunk and the download of the result
        # runs on the model's device (device_frames, difference_mask_device): resize,
        # uint8 <-> float, the mask.
        timer = PhaseTimer(self.device)
        source_u8 = as_device_u8(frames_thwc_u8, self.device)
        model_u8 = resize_frames_u8(source_u8, model_w, model_h)
        timer.lap("frames_in")
        with attention_kernels(self.device):
            video, timings = self._denoiser(model_u8)
        timer.lap("model")
        output_u8 = video_to_device_u8(video, width, height)
        if self.config.composite:
            reconstruction = self._denoiser.last_reconstruction
            mask_thw = difference_mask_device(
                source_u8, output_u8, self.config.clear.mask,
                reconstruction_thwc_u8=None if reconstruction is None else video_to_device_u8(
                    reconstruction, width, height))
            mask_thw_f32 = mask_thw.cpu().numpy()
        else:
            mask_thw_f32 = np.ones(frames_thwc_u8.shape[:3], dtype=np.float32)
        output_thwc_u8 = output_u8.cpu().numpy()
        timer.lap("frames_out")
        # The model's own phases, and the frame work around them (upload + resize; uint8,
        # mask and download).
        self.last_timings = {**timings, "frames_in": timer.seconds["frames_in"],
                             "frames_out": timer.seconds["frames_out"]}
        return RemovalResult(frames_thwc_u8=output_thwc_u8, mask_thw_f32=mask_thw_f32)

    def _remove_cover_crop(self, frames_thwc_u8: np.ndarray, crop: "CoverCrop") -> RemovalResult:
        """CLEAR's released resize: cover + centre crop in, the model's pixels mapped back
        where it saw the frame; the cropped-off border keeps the source (mask 0)."""
        from clear_ray.models.fast_path import attention_kernels
        from clear_ray.removers.difference_mask import difference_mask

        with attention_kernels(self.device):
            video, timings = self._denoiser(crop.to_model(frames_thwc_u8))
        output_thwc_u8, seen_hw = crop.to_source(video_to_u8(video, crop.model_w, crop.model_h))
        output_thwc_u8[:, ~seen_hw] = frames_thwc_u8[:, ~seen_hw]
        if self.config.composite:
            reconstruction = self._denoiser.last_reconstruction
            if reconstruction is not None:
                reconstruction_u8, _ = crop.to_source(video_to_u8(reconstruction, crop.model_w, crop.model_h))
                reconstruction_u8[:, ~seen_hw] = frames_thwc_u8[:, ~seen_hw]
            else:
                reconstruction_u8 = None
            mask_thw_f32 = difference_mask(frames_thwc_u8, output_thwc_u8, self.config.clear.mask,
                                           reconstruction_thwc_u8=reconstruction_u8)
        else:
            mask_thw_f32 = np.ones(frames_thwc_u8.shape[:3], dtype=np.float32)
        mask_thw_f32[:, ~seen_hw] = 0.0
        self.last_timings = timings
        return RemovalResult(frames_thwc_u8=output_thwc_u8, mask_thw_f32=mask_thw_f32)


def runtime_fingerprint(settings_fingerprint: str, runtime: dict) -> str:
    """The settings' fingerprint extended by what an actor resolved at run time."""
    blob = json.dumps({"settings": settings_fingerprint, "runtime": runtime}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
