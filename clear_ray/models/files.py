"""What a CLEAR model directory holds, which architectures it may have, and its identity.

CLEAR runs on Wan2.1-Fun-V1.1-1.3B-Control. Its directory (as published) holds:

    diffusion_pytorch_model*.safetensors        the DiT (in_dim 48: noise + control + zeros)
    models_t5_umt5-xxl-enc-bf16.pth             the umt5-xxl text encoder
    Wan2.1_VAE.pth                              the Wan video VAE
    google/umt5-xxl/                            the umt5-xxl tokenizer
    models_clip_open-clip-...-huge-14.pth       not read: CLEAR feeds zeros as CLIP feature

Which architecture a weight file has is decided the same way for every file: DiffSynth's
own detection (a hash of the file's key/shape layout) for the published files, else an
optional ``clear_ray_architecture.json`` beside them (models DiffSynth does not know, such
as the tiny random models the tests build). Either way the result is a set of constructor
arguments for DiffSynth's classes; loading is then one code path.

No torch here: the driver computes the fingerprint from file metadata alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clear_ray.removers.base import RemoverSetupError

DIT_GLOB = "diffusion_pytorch_model*.safetensors"
TEXT_ENCODER_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
VAE_FILE = "Wan2.1_VAE.pth"
TOKENIZER_DIR = "google/umt5-xxl"
TOKENIZER_CONFIG = "tokenizer_config.json"
ARCHITECTURE_FILE = "clear_ray_architecture.json"

# What each component is for, as the one-line errors name it.
DESCRIPTIONS = {
    "dit": "the Wan2.1-Fun-V1.1-1.3B-Control DiT weights",
    "text_encoder": "the umt5-xxl text encoder",
    "vae": "the Wan video VAE",
    "tokenizer": "the umt5-xxl tokenizer",
}
COMPONENTS = ("dit", "text_encoder", "vae")

# The published sizes, our own record of them. Tests build these on the meta device and
# check that DiffSynth's hash detection maps each layout to the same arguments.
FUN_CONTROL_V11_1P3B_DIT: dict[str, Any] = {
    "has_image_input": True, "patch_size": [1, 2, 2], "in_dim": 48, "dim": 1536, "ffn_dim": 8960,
    "freq_dim": 256, "text_dim": 4096, "out_dim": 16, "num_heads": 12, "num_layers": 30, "eps": 1e-06,
    "has_ref_conv": True,
}
WAN21_VAE: dict[str, Any] = {}  # DiffSynth's WanVideoVAE defaults: z_dim 16, dim 96, 2 res blocks
UMT5_XXL_ENCODER: dict[str, Any] = {}  # DiffSynth's WanTextEncoder defaults: vocab 256384, dim 4096

# The DiT input is [noisy latents 16 | control latents 16 | zeros 16] channels.
LATENT_CHANNELS = 16
FUN_CONTROL_IN_DIM = 3 * LATENT_CHANNELS

# Bumped whenever this backend's output for the same weights and settings changes.
BACKEND_VERSION = "clear-2"  # 2: resize on the device (within one level of OpenCV's)


class ClearModelError(RemoverSetupError):
    """A CLEAR model dir, LoRA file or architecture that cannot be used (one-line message)."""


@dataclass(frozen=True)
class ModelFiles:
    model_dir: Path
    dit: tuple[Path, ...]
    text_encoder: Path
    vae: Path
    tokenizer_dir: Path
    architecture_file: Path | None

    def paths(self, component: str) -> tuple[Path, ...]:
        return {"dit": self.dit, "text_encoder": (self.text_encoder,), "vae": (self.vae,)}[component]

    def identity_files(self) -> list[Path]:
        """Every file whose content decides the model's output."""
        files = [*self.dit, self.text_encoder, self.vae]
        files += sorted(p for p in self.tokenizer_dir.rglob("*") if p.is_file())
        if self.architecture_file is not None:
            files.append(self.architecture_file)
        return files


def locate_model_files(model_dir: str | Path) -> ModelFiles:
    """Find every file CLEAR needs in ``model_dir``; the first one missing is named in the error."""
    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise ClearModelError(f"model_dir {model_dir} is not a directory (it should hold the "
                              f"Wan2.1-Fun-V1.1-1.3B-Control files)")
    dit = tuple(sorted(model_dir.glob(DIT_GLOB)))
    if not dit:
        raise ClearModelError(f"model_dir {model_dir} lacks {DIT_GLOB} ({DESCRIPTIONS['dit']})")
    for name, component in ((TEXT_ENCODER_FILE, "text_encoder"), (VAE_FILE, "vae")):
        if not (model_dir / name).is_file():
            raise ClearModelError(f"model_dir {model_dir} lacks {name} ({DESCRIPTIONS[component]})")
    tokenizer_dir = model_dir / TOKENIZER_DIR
    if not (tokenizer_dir / TOKENIZER_CONFIG).is_file():
        raise ClearModelError(f"model_dir {model_dir} lacks {TOKENIZER_DIR}/{TOKENIZER_CONFIG} "
                              f"({DESCRIPTIONS['tokenizer']})")
    architecture = model_dir / ARCHITECTURE_FILE
    return ModelFiles(model_dir=model_dir, dit=dit, text_encoder=model_dir / TEXT_ENCODER_FILE,
                      vae=model_dir / VAE_FILE, tokenizer_dir=tokenizer_dir,
                      architecture_file=architecture if architecture.is_file() else None)


def read_architecture_file(path: Path) -> dict[str, dict[str, Any]]:
    """``{"dit": {...}, "vae": {...}, "text_encoder": {...}}``: constructor arguments of
    DiffSynth's WanModel, WanVideoVAE (z_dim, dim, num_res_blocks) and WanTextEncoder."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ClearModelError(f"{path} is not readable JSON ({error})") from None
    if not isinstance(data, dict):
        raise ClearModelError(f"{path} must hold a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(COMPONENTS))
    if unknown:
        raise ClearModelError(f"{path} has unknown entries {unknown}; allowed: {list(COMPONENTS)}")
    for component, kwargs in data.items():
        if not isinstance(kwargs, dict):
            raise ClearModelError(f"{path}: {component!r} must be an object of constructor arguments")
    return data


def require_fun_control(dit_kwargs: dict[str, Any], source: str) -> None:
    """CLEAR feeds the subtitled chunk as control latents: only a Fun-Control DiT takes them."""
    in_dim, out_dim = dit_kwargs.get("in_dim"), dit_kwargs.get("out_dim")
    if in_dim != FUN_CONTROL_IN_DIM or out_dim != LATENT_CHANNELS:
        raise ClearModelError(
            f"the DiT ({source}) has in_dim {in_dim}, out_dim {out_dim}; CLEAR needs a Fun-Control DiT "
            f"(in_dim {FUN_CONTROL_IN_DIM}, out_dim {LATENT_CHANNELS}) such as Wan2.1-Fun-V1.1-1.3B-Control, "
            f"not e.g. the plain Wan2.1-T2V-1.3B (in_dim 16)")


def resolve_dtype_name(setting: str, device: str) -> str:
    if setting != "auto":
        return setting
    # This CPU class has no bf16 instructions: bf16 is ~10x slower than fp32 there.
    return "bfloat16" if str(device).startswith("cuda") else "float32"


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def weights_identity(files: ModelFiles, sample_bytes: int = 1 << 16) -> str:
    """Names, sizes and three content samples of every weight file: cheap for 15 GB of
    weights, yet a re-converted or re-downloaded file with other content changes it."""
    digest = hashlib.sha256()
    for path in files.identity_files():
        size = path.stat().st_size
        digest.update(f"{path.relative_to(files.model_dir).as_posix()}\0{size}\0".encode())
        with open(path, "rb") as handle:
            for offset in sorted({0, max(0, size // 2 - sample_bytes // 2), max(0, size - sample_bytes)}):
                handle.seek(offset)
                digest.update(handle.read(sample_bytes))
    return digest.hexdigest()


def clear_fingerprint(remover_config: Any) -> str:
    """Everything that changes the CLEAR backend's output, from settings and file metadata
    alone (no weights are loaded). ``remover_config`` is a RemoverConfig."""
    settings = remover_config.clear
    if settings.model_dir is None:
        raise ClearModelError("remover.clear.model_dir is not set (--model-dir: the "
                              "Wan2.1-Fun-V1.1-1.3B-Control files)")
    if settings.lora is None:
        raise ClearModelError("remover.clear.lora is not set (--lora: the CLEAR LoRA checkpoint)")
    lora = Path(settings.lora).expanduser()
    if not lora.is_file():
        raise ClearModelError(f"LoRA file {lora} does not exist (the CLEAR LoRA checkpoint)")
    files = locate_model_files(settings.model_dir)
    identity = {
        "version": BACKEND_VERSION,
        "weights": weights_identity(files),
        "lora": file_sha256(lora),
        "settings": settings.model_dump(mode="json", exclude={"model_dir", "lora", "compile"} | (
            # Latent windowing's knobs change nothing under pixel windowing: leaving them out
            # keeps a pixel job's staged chunks valid whatever they are set to.
            {"windowing", "latent_window", "latent_stride"} if settings.windowing == "pixel" else set())),
        "composite": bool(remover_config.composite),
    }
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
