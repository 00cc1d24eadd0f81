"""One window through DiffSynth's units and ``model_fn_wan_video``, exactly as CLEAR's
inference.py runs it through ``WanVideoPipeline`` (a test checks the result equals the
stock ``__call__``):
  1. noise from ``seed`` on the CPU generator            (WanVideoUnit_NoiseInitializer)
  2. y = [VAE(subtitled window), zeros], CLIP feature 0  (WanVideoUnit_FunControl)
  3. Euler flow matching, sigmas linspace(1, 0, steps+1)[:-1] shifted by ``shift``,
     one ``model_fn_wan_video`` call per step at cfg 1.0 (FlowMatchScheduler("Wan"))
  4. VAE decode; encode and decode tiled as CLEAR runs them: tiles (30, 52), stride
     (15, 26) latent pixels.

Latent windowing (``sliding_window=(size, stride)``, ClearConfig ``windowing: latent``) is
CLEAR's ``--use_sliding_window``: the chunk is encoded and decoded whole, and every DiT pass
goes through DiffSynth's own ``TemporalTiler_BCTHW`` (``model_fn_wan_video`` with
``sliding_window_size`` / ``sliding_window_stride``), unchanged. Its semantics, which we
match by calling it rather than copying it:
  - size and stride count *latent* frames (time axis of the (B, 16, T', h, w) latents;
    one latent frame = 4 video frames after the first). CLEAR's script passes its pixel
    chunk_size / stride (81 / 73) straight in, i.e. 81-latent-frame windows; our defaults
    (21 / 19) are the 81-frame windows with 8 frames of overlap its help text describes;
  - windows start at 0, stride, 2·stride, ...; the last may be shorter (it ends at T'),
    and a window is skipped when the previous one already reached T';
  - each window's velocity is weighted by a linear ramp (i + 0.5) / (size − stride) over
    its first and last size − stride latent frames, except at the clip's own ends, and
    the weighted sum is divided by the summed weights: the blend happens on the velocity
    of every step, in latent space, and the scheduler steps the whole latent at once;
  - latents and control latents y are sliced per window (RoPE positions restart at each
    window, as in DiffSynth); the text context and CLIP feature are shared.
A chunk no longer than one window is one window with weight 1, bit-equal to pixel
windowing (tested).
Stage II training calls the same pieces (``encode_video``, ``control_from_latents``,
``predict_velocity``; ``control_inputs`` is DiffSynth's unit they equal), so the
trainer's denoising and the remover's are one code.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

TILE_SIZE = (30, 52)  # CLEAR's (and DiffSynth's default) VAE tiles, in latent pixels
TILE_STRIDE = (15, 26)
NEGATIVE_PROMPT = ""  # CLEAR passes none; only used when cfg > 1


class ClearDenoiser:
    """One chunk (frames already at the model resolution) through DiffSynth's units and
    ``model_fn_wan_video``; returns the decoded video (1, 3, T, H, W) in [-1, 1] and the
    seconds each phase took. With ``reconstruct``, it also decodes the control latents
    (the model's picture of its input, no removal) into ``last_reconstruction``: the
    reference the difference mask compares the output with, so the VAE's drift cancels."""

    def __init__(self, pipe: Any, context: "torch.Tensor", negative_context: "torch.Tensor | None", *,
                 steps: int, cfg: float, shift: float, seed: int, tiled: bool, reconstruct: bool = False,
                 sliding_window: tuple[int, int] | None = None):
        if cfg != 1.0 and negative_context is None:
            raise ValueError("cfg > 1 needs the negative prompt's context")
        self.pipe, self.context, self.negative_context = pipe, context, negative_context
        self.steps, self.cfg, self.shift, self.seed, self.tiled = steps, cfg, shift, seed, tiled
        self.reconstruct, self.sliding_window = reconstruct, sliding_window
        self.last_reconstruction: "torch.Tensor | None" = None

    def __call__(self, frames_thwc_u8: "np.ndarray | torch.Tensor") -> tuple["torch.Tensor", dict[str, float]]:
        """``frames_thwc_u8``: uint8 (T, H, W, 3), numpy or a tensor (already on the device)."""
        import torch

        pipe = self.pipe
        num_frames, height, width = frames_thwc_u8.shape[:3]
        timer = PhaseTimer(pipe.device)
        with torch.no_grad():
            noise = initial_noise(pipe, num_frames, height, width, self.seed)
            # = control_inputs(...), with the uint8 -> float conversion on the device
            control = control_from_latents(encode_video(pipe, frames_thwc_u8, tiled=self.tiled))
            timer.lap("vae_encode")
            latents = euler_sample(pipe, noise, control, self.context, steps=self.steps, shift=self.shift,
                                   cfg=self.cfg, negative_context=self.negative_context,
                                   sliding_window=self.sliding_window)
            timer.lap("dit")
            video = pipe.vae.decode(latents, device=pipe.device, tiled=self.tiled, tile_size=TILE_SIZE,
                                    tile_stride=TILE_STRIDE)
            timer.lap("vae_decode")
            # 5. The input as the VAE sees it: y = [control latents, zeros].
            self.last_reconstruction = None
            if self.reconstruct:
                control_latents = control["y"][:, :noise.shape[1]]
                self.last_reconstruction = pipe.vae.decode(control_latents, device=pipe.device, tiled=self.tiled,
                                                           tile_size=TILE_SIZE, tile_stride=TILE_STRIDE)
                timer.lap("vae_decode_reference")
        return video, timer.seconds


def initial_noise(pipe: Any, num_frames: int, height: int, width: int, seed: int) -> "torch.Tensor":
    """1. The starting noise, as WanVideoUnit_NoiseInitializer draws it (CPU generator)."""
    from diffsynth.pipelines.wan_video import WanVideoUnit_NoiseInitializer

    return WanVideoUnit_NoiseInitializer().process(
        pipe, height=height, width=width, num_frames=num_frames, seed=seed, rand_device="cpu",
        vace_reference_image=None, animate2_reference_video=None)["noise"]


def control_inputs(pipe: Any, frames_thwc_u8: np.ndarray, latents: "torch.Tensor", *, tiled: bool) -> dict[str, Any]:
    """2. ``{"y": [VAE(frames), zeros], "clip_feature": zeros}`` as WanVideoUnit_FunControl
    makes them (``latents`` only gives the shape)."""
    from diffsynth.pipelines.wan_video import WanVideoUnit_FunControl

    num_frames, height, width = frames_thwc_u8.shape[:3]
    return WanVideoUnit_FunControl().process(
        pipe, control_video=frames_thwc_u8, num_frames=num_frames, height=height, width=width,
        tiled=tiled, tile_size=TILE_SIZE, tile_stride=TILE_STRIDE, clip_feature=None, y=None, latents=latents)


def encode_video(pipe: Any, frames_thwc_u8: "np.ndarray | torch.Tensor", *, tiled: bool) -> "torch.Tensor":
    """(1, 16, T', H/8, W/8) latents of a window, encoded exactly as ``control_inputs`` encodes
    the control video (so cached or training latents equal the inference path's). The
    uint8 frames go to the device as they are and become floats there, bit-equal to
    ``pipe.preprocess_video`` (``device_frames.model_input``)."""
    from clear_ray.models.device_frames import model_input

    video = model_input(pipe, frames_thwc_u8)
    return pipe.vae.encode(video, device=pipe.device, tiled=tiled, tile_size=TILE_SIZE, tile_stride=TILE_STRIDE
                           ).to(dtype=pipe.torch_dtype, device=pipe.device)


def control_from_latents(control_latents: "torch.Tensor") -> dict[str, "torch.Tensor"]:
    """What ``control_inputs`` returns, from already encoded control latents (B, 16, T, h, w):
    y = [control, zeros] and a zero CLIP feature (CLEAR feeds no reference image)."""
    import torch

    y = torch.cat([control_latents, torch.zeros_like(control_latents)], dim=1)
    clip_feature = torch.zeros((control_latents.shape[0], 257, 1280), dtype=control_latents.dtype,
                               device=control_latents.device)
    return {"y": y, "clip_feature": clip_feature}


def predict_velocity(dit: Any, latents: "torch.Tensor", timestep: "torch.Tensor", context: "torch.Tensor",
                     control: dict[str, Any], *, gradient_checkpointing: bool = False,
                     sliding_window: tuple[int, int] | None = None) -> "torch.Tensor":
    """One DiT pass: the flow-matching velocity at ``timestep`` (a 1-element tensor); with
    ``sliding_window=(size, stride)`` through DiffSynth's temporal tiler (module docstring)."""
    from diffsynth.pipelines.wan_video import model_fn_wan_video

    size, stride = sliding_window if sliding_window is not None else (None, None)
    return model_fn_wan_video(dit=dit, latents=latents, timestep=timestep, context=context,
                              clip_feature=control["clip_feature"], y=control["y"],
                              use_gradient_checkpointing=gradient_checkpointing,
                              sliding_window_size=size, sliding_window_stride=stride)


def euler_sample(pipe: Any, noise: "torch.Tensor", control: dict[str, Any], context: "torch.Tensor", *,
                 steps: int, shift: float, cfg: float = 1.0, negative_context: "torch.Tensor | None" = None,
                 sliding_window: tuple[int, int] | None = None) -> "torch.Tensor":
    """3. Euler flow matching from ``noise``: one DiT pass per step at cfg 1.0."""
    pipe.scheduler.set_timesteps(steps, denoising_strength=1.0, shift=shift)
    latents = noise
    for step, timestep in enumerate(pipe.scheduler.timesteps):
        timestep = timestep.unsqueeze(0).to(dtype=pipe.torch_dtype, device=pipe.device)
        velocity = predict_velocity(pipe.dit, latents, timestep, context, control, sliding_window=sliding_window)
        if cfg != 1.0:
            negative = predict_velocity(pipe.dit, latents, timestep, negative_context, control,
                                        sliding_window=sliding_window)
            velocity = negative + cfg * (velocity - negative)
        latents = pipe.scheduler.step(velocity, pipe.scheduler.timesteps[step], latents)
    return latents


class PhaseTimer:
    """Seconds per phase (``lap(name)`` ends one); on CUDA each lap waits for the kernels."""

    def __init__(self, device: Any):
        self.cuda = str(device).startswith("cuda")
        self.seconds: dict[str, float] = {}
        self._last = self._now()

    def _now(self) -> float:
        if self.cuda:  # GPU work is asynchronous: a phase ends when its kernels have
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()

    def lap(self, name: str) -> None:
        now = self._now()
        self.seconds[name] = now - self._last
        self._last = now


