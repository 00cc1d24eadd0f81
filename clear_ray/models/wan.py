"""Wan model files -> DiffSynth models: the one place that builds them, for inference
(the ``clear`` remover) and training (Stage II) alike.

Which architecture a file has is decided by DiffSynth's own detection (the md5 of its
key/shape layout) or, for layouts it does not know (the tiny test models), by the model
dir's ``clear_ray_architecture.json``; loading is then one code path through DiffSynth's
``load_model``. DiffSynth is imported inside functions only.
"""

from __future__ import annotations

import functools
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clear_ray.models.files import (
    ARCHITECTURE_FILE, DESCRIPTIONS, ClearModelError, ModelFiles, read_architecture_file, require_fun_control,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

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


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
