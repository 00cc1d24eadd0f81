"""CLEAR (arXiv 2603.21901) as a remover: Wan2.1-Fun-V1.1-1.3B-Control + the CLEAR LoRA.

The only module that imports DiffSynth, always inside functions: the driver imports this
module for ``fingerprint_for`` and must not pay for torch or DiffSynth.

One chunk runs exactly as CLEAR's inference.py runs it through ``WanVideoPipeline``, by
calling DiffSynth's own pieces (a test checks the result equals the stock ``__call__``):
  1. noise from ``seed`` on the CPU generator            (WanVideoUnit_NoiseInitializer)
  2. y = [VAE(subtitled chunk), zeros], CLIP feature 0   (WanVideoUnit_FunControl)
  3. Euler flow matching, sigmas linspace(1, 0, steps+1)[:-1] shifted by ``shift``,
     one ``model_fn_wan_video`` call per step at cfg 1.0 (FlowMatchScheduler("Wan"))
  4. VAE decode; encode and decode tiled as CLEAR runs them: tiles (30, 52), stride
     (15, 26) latent pixels (``ClearConfig.tiled_vae``).
What differs is only when work happens: the prompt's T5 context is computed once per
actor (then the 11 GB text encoder is freed) and the LoRA is fused into the DiT weights.
"""

from __future__ import annotations

import functools
import gc
import logging
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from clear_ray.removers.base import RemovalResult
from clear_ray.removers.clear_models import (
    ARCHITECTURE_FILE, DESCRIPTIONS, ClearModelError, ModelFiles, clear_fingerprint, locate_model_files,
    read_architecture_file, require_fun_control, resolve_dtype_name,
)

if TYPE_CHECKING:
    import torch

    from clear_ray.config import RemoverConfig

log = logging.getLogger(__name__)

TILE_SIZE = (30, 52)  # CLEAR's (and DiffSynth's default) VAE tiles, in latent pixels
TILE_STRIDE = (15, 26)
NEGATIVE_PROMPT = ""  # CLEAR passes none; only used when cfg > 1
TOKENIZER_LENGTH = 512  # as WanVideoPipeline.from_pretrained builds its tokenizer

# component -> (DiffSynth model_name, model_class, state-dict converter) that its detection must yield
_DIFFSYNTH_MODELS = {
    "dit": ("wan_video_dit", "diffsynth.models.wan_video_dit.WanModel", None),
    "text_encoder": ("wan_video_text_encoder", "diffsynth.models.wan_video_text_encoder.WanTextEncoder", None),
    "vae": ("wan_video_vae", "diffsynth.models.wan_video_vae.WanVideoVAE",
            "diffsynth.utils.state_dict_converters.wan_video_vae.WanVideoVAEStateDictConverter"),
}
_READ_ERRORS = (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError)


@dataclass(frozen=True)
class Architecture:
    component: str
    kwargs: dict[str, Any]  # constructor arguments of the DiffSynth class
    source: str  # "DiffSynth layout hash ..." or the architecture file's name


def detect_architecture(component: str, state_dict: dict[str, Any], architecture_file: Path | None,
                        where: str) -> Architecture:
    """DiffSynth's detection (the md5 of the key/shape layout) first; for layouts it does
    not know, the model dir's architecture file. Works on meta tensors too."""
    from diffsynth.configs import MODEL_CONFIGS
    from diffsynth.core.loader import hash_state_dict_keys

    model_name, class_path, converter = _DIFFSYNTH_MODELS[component]
    layout_hash = hash_state_dict_keys(state_dict)
    known = [entry for entry in MODEL_CONFIGS if entry["model_hash"] == layout_hash]
    ours = [entry for entry in known if entry["model_name"] == model_name]
    if ours:
        entry = ours[0]
        if entry["model_class"] != class_path or entry.get("state_dict_converter") != converter:
            raise ClearModelError(f"{where} is DiffSynth's {entry['model_class']} (layout hash {layout_hash}), "
                                  f"not {DESCRIPTIONS[component]}")
        architecture = Architecture(component, dict(entry.get("extra_kwargs", {})), f"DiffSynth layout hash {layout_hash}")
    elif known:
        raise ClearModelError(f"{where} is DiffSynth's {known[0]['model_name']} (layout hash {layout_hash}), "
                              f"not {DESCRIPTIONS[component]}")
    else:
        spec = read_architecture_file(architecture_file) if architecture_file is not None else {}
        if component not in spec:
            raise ClearModelError(f"{where} has a key/shape layout DiffSynth does not recognise (hash {layout_hash}) "
                                  f"and no {ARCHITECTURE_FILE} beside it describes {DESCRIPTIONS[component]}")
        architecture = Architecture(component, dict(spec[component]), ARCHITECTURE_FILE)
    if component == "dit":
        require_fun_control(architecture.kwargs, architecture.source)
    return architecture


@functools.lru_cache(maxsize=None)
def model_class(component: str) -> type:
    """The DiffSynth class a component is built from (the VAE's width is an argument)."""
    from diffsynth.models.wan_video_dit import WanModel
    from diffsynth.models.wan_video_text_encoder import WanTextEncoder
    from diffsynth.models.wan_video_vae import VideoVAE_, WanVideoVAE

    class SizedWanVideoVAE(WanVideoVAE):
        """WanVideoVAE whose inner width is an argument (DiffSynth fixes dim 96, 2 res
        blocks); with the defaults it is exactly WanVideoVAE."""

        def __init__(self, z_dim: int = 16, dim: int = 96, num_res_blocks: int = 2):
            super().__init__(z_dim=z_dim)
            if (dim, num_res_blocks) != (96, 2):
                self.model = VideoVAE_(dim=dim, z_dim=z_dim, num_res_blocks=num_res_blocks).eval().requires_grad_(False)

    return {"dit": WanModel, "text_encoder": WanTextEncoder, "vae": SizedWanVideoVAE}[component]


def load_component(files: ModelFiles, component: str, device: str, dtype: "torch.dtype") -> "torch.nn.Module":
    """Read one component's weights, decide its architecture, build it through DiffSynth's
    ``load_model`` (the same call for published and tiny files) on ``device`` in ``dtype``."""
    from diffsynth.core.loader import load_model, load_state_dict
    from diffsynth.utils.state_dict_converters.wan_video_vae import WanVideoVAEStateDictConverter
    from safetensors import SafetensorError

    paths = [str(path) for path in files.paths(component)]
    where = f"{files.model_dir}/{files.paths(component)[0].name}"
    try:
        # DiffSynth reads .pth files with weights_only=True: no pickled code runs.
        state_dict = load_state_dict(paths if len(paths) > 1 else paths[0], torch_dtype=dtype, device="cpu")
    except (*_READ_ERRORS, SafetensorError) as error:
        raise ClearModelError(f"{where} ({DESCRIPTIONS[component]}) cannot be read: {_first_line(error)}") from None
    architecture = detect_architecture(component, state_dict, files.architecture_file, where)
    converter = WanVideoVAEStateDictConverter if component == "vae" else None
    try:
        model = load_model(model_class(component), paths[0] if len(paths) == 1 else paths, architecture.kwargs,
                           torch_dtype=dtype, device=device, state_dict_converter=converter, state_dict=state_dict)
    except TypeError as error:
        raise ClearModelError(f"{architecture.source}: bad {component} arguments ({_first_line(error)})") from None
    except RuntimeError as error:
        if "loading state_dict" not in str(error):  # e.g. out of memory: not the file's fault
            raise
        details = " ".join(str(error).split())[:300]
        raise ClearModelError(f"{where} does not fit the {component} architecture from {architecture.source}: "
                              f"{details}") from None
    log.info("loaded %s from %s (architecture: %s)", component, where, architecture.source)
    return model


def load_tokenizer(files: ModelFiles) -> Any:
    from diffsynth.models.wan_video_text_encoder import HuggingfaceTokenizer

    try:
        return HuggingfaceTokenizer(name=str(files.tokenizer_dir), seq_len=TOKENIZER_LENGTH, clean="whitespace",
                                    local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise ClearModelError(f"{files.tokenizer_dir} ({DESCRIPTIONS['tokenizer']}) cannot be loaded: "
                              f"{_first_line(error)}") from None


def assemble_pipeline(device: str, dtype: "torch.dtype", **components: Any) -> Any:
    """A ``WanVideoPipeline`` with the given models assigned (dit, vae, text_encoder,
    tokenizer), set up as ``from_pretrained`` sets it up, without any hub access."""
    from diffsynth.pipelines.wan_video import WanVideoPipeline

    pipe = WanVideoPipeline(device=device, torch_dtype=dtype)
    for name, model in components.items():
        setattr(pipe, name, model)
    if pipe.vae is not None:
        pipe.height_division_factor = pipe.width_division_factor = pipe.vae.upsampling_factor * 2
    pipe.vram_management_enabled = pipe.check_vram_management_state()
    return pipe


def load_pipeline(files: ModelFiles, device: str, dtype: "torch.dtype") -> Any:
    """Every component of ``files`` in one pipeline (no LoRA yet)."""
    return assemble_pipeline(
        device, dtype,
        text_encoder=load_component(files, "text_encoder", device, dtype), tokenizer=load_tokenizer(files),
        dit=load_component(files, "dit", device, dtype), vae=load_component(files, "vae", device, dtype))


def encode_prompt(pipe: Any, prompt: str) -> "torch.Tensor":
    """The prompt's T5 context, computed as WanVideoUnit_PromptEmbedder computes it."""
    import torch
    from diffsynth.pipelines.wan_video import WanVideoUnit_PromptEmbedder

    with torch.no_grad():
        return WanVideoUnit_PromptEmbedder().encode_prompt(pipe, prompt)


class ClearDenoiser:
    """One chunk (frames already at the model resolution) through DiffSynth's units and
    ``model_fn_wan_video``; returns the decoded video (1, 3, T, H, W) in [-1, 1] and the
    seconds each phase took. With ``reconstruct``, it also decodes the control latents
    (the model's picture of its input, no removal) into ``last_reconstruction``: the
    reference the difference mask compares the output with, so the VAE's drift cancels."""

    def __init__(self, pipe: Any, context: "torch.Tensor", negative_context: "torch.Tensor | None", *,
                 steps: int, cfg: float, shift: float, seed: int, tiled: bool, reconstruct: bool = False):
        if cfg != 1.0 and negative_context is None:
            raise ValueError("cfg > 1 needs the negative prompt's context")
        self.pipe, self.context, self.negative_context = pipe, context, negative_context
        self.steps, self.cfg, self.shift, self.seed, self.tiled = steps, cfg, shift, seed, tiled
        self.reconstruct = reconstruct
        self.last_reconstruction: "torch.Tensor | None" = None

    def __call__(self, frames_thwc_u8: np.ndarray) -> tuple["torch.Tensor", dict[str, float]]:
        import torch
        from diffsynth.pipelines.wan_video import (
            WanVideoUnit_FunControl, WanVideoUnit_NoiseInitializer, model_fn_wan_video,
        )

        pipe = self.pipe
        num_frames, height, width = frames_thwc_u8.shape[:3]
        timer = _PhaseTimer(pipe.device)
        with torch.no_grad():
            # 1-2. Noise and the control latents, as the stock units make them.
            noise = WanVideoUnit_NoiseInitializer().process(
                pipe, height=height, width=width, num_frames=num_frames, seed=self.seed, rand_device="cpu",
                vace_reference_image=None, animate2_reference_video=None)["noise"]
            control = WanVideoUnit_FunControl().process(
                pipe, control_video=frames_thwc_u8, num_frames=num_frames, height=height, width=width,
                tiled=self.tiled, tile_size=TILE_SIZE, tile_stride=TILE_STRIDE, clip_feature=None, y=None,
                latents=noise)
            timer.lap("vae_encode")
            # 3. Euler steps; one DiT pass each at cfg 1.0.
            pipe.scheduler.set_timesteps(self.steps, denoising_strength=1.0, shift=self.shift)
            latents = noise
            for step, timestep in enumerate(pipe.scheduler.timesteps):
                timestep = timestep.unsqueeze(0).to(dtype=pipe.torch_dtype, device=pipe.device)
                inputs = dict(dit=pipe.dit, latents=latents, timestep=timestep,
                              clip_feature=control["clip_feature"], y=control["y"])
                velocity = model_fn_wan_video(context=self.context, **inputs)
                if self.cfg != 1.0:
                    negative = model_fn_wan_video(context=self.negative_context, **inputs)
                    velocity = negative + self.cfg * (velocity - negative)
                latents = pipe.scheduler.step(velocity, pipe.scheduler.timesteps[step], latents)
            timer.lap("dit")
            # 4. Decode.
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


class ClearRemover:
    """The CLEAR backend: one pipeline per actor, ``remove`` per chunk."""

    name: ClassVar[str] = "clear"
    wants_gpu: ClassVar[bool] = True

    @classmethod
    def fingerprint_for(cls, config: "RemoverConfig") -> str:
        return clear_fingerprint(config)

    def __init__(self, config: "RemoverConfig", device: str = "cpu"):
        import torch

        from clear_ray.removers.clear_lora import fuse_lora, load_lora

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
        from clear_ray.removers.clear_resolution import model_resolution, resize_frames
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
    from clear_ray.removers.clear_resolution import resize_frames

    num_frames = video_bcthw.shape[2]
    output_thwc_u8 = np.empty((num_frames, height, width, 3), np.uint8)
    for index in range(num_frames):
        frame_hwc = (video_bcthw[0, :, index].permute(1, 2, 0).float().cpu().numpy() + 1.0) * np.float32(127.5)
        resized_hwc = resize_frames(frame_hwc[None], width, height)[0]
        output_thwc_u8[index] = np.clip(np.rint(resized_hwc), 0, 255)
    return output_thwc_u8


class _PhaseTimer:
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


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
