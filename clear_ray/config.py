"""Typed configuration for every clear_ray job.

One pydantic model per concern, composed into one model per job. A job's settings are
layered, later layers winning: model defaults < YAML file < ``CLEAR_RAY_*`` environment
variables < command-line flags. They are validated once, at start, and every rejection
names the field and the allowed range, so a typo in a 10,000-video job fails in the
first second rather than an hour in.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

ENV_PREFIX = "CLEAR_RAY_"
ENV_NESTING = "__"

DEFAULT_CLEAR_PROMPT = (
    "Please remove the subtitle text from the video while preserving the character "
    "appearance, background composition, and color style. Do not add any new elements."
)

DEFAULT_VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".m4v", ".webm", ".avi", ".ts", ".mts", ".flv")

X264Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]


class ConfigError(ValueError):
    """Invalid settings. ``problems`` holds one ``"dotted.field: reason"`` line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class StrictModel(BaseModel):
    # Unknown keys are errors: a misspelt YAML key must not be silently ignored.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class ChunkingConfig(StrictModel):
    """How a video is cut into model windows and blended back together."""

    chunk_size: int = Field(81, ge=5, le=1001, description="frames per window; must be 4n+1")
    overlap: int = Field(16, ge=0, description="frames shared by consecutive windows; < chunk_size")
    blend: Literal["cosine", "linear"] = Field("cosine", description="cross-fade shape in overlaps")
    segment_frames: int = Field(
        250, ge=1, le=100_000,
        description="frames per independently encoded output piece (each starts with an IDR frame)",
    )

    @field_validator("chunk_size")
    @classmethod
    def _four_n_plus_one(cls, value: int) -> int:
        # The Wan VAE compresses time 4x after the first frame: windows are 4n+1 frames.
        if (value - 1) % 4 != 0:
            raise ValueError(f"must be 4n+1 (e.g. 81), got {value}")
        return value

    @field_validator("overlap")
    @classmethod
    def _overlap_below_chunk(cls, value: int, info) -> int:
        chunk_size = info.data.get("chunk_size")
        if chunk_size is not None and value >= chunk_size:
            raise ValueError(f"must be < chunk_size ({chunk_size}), got {value}")
        return value


class DifferenceMaskConfig(StrictModel):
    """How the CLEAR backend turns "where its output differs from the input" into a soft mask.

    A pixel counts as changed when its largest per-channel change, averaged over a
    ``smoothing_px`` box, exceeds a threshold (0-255). Compared with the model's own
    reconstruction of the input (``compare_to: reconstruction``) the VAE's drift cancels and
    ``reconstruction_threshold`` can sit at the text's contrast; compared with the input,
    ``threshold`` must stay above the drift. Changed regions grow by ``dilate_px``, get a
    ``feather_px`` soft edge; misses of up to ``temporal_gap`` frames inside a cue are closed
    and the mask fades over ``temporal_radius`` frames at a cue's edges; everywhere else it
    is exactly 0.
    """

    threshold: float = Field(24.0, gt=0.0, le=255.0,
                             description="mean change (0-255) vs the input that counts as changed")
    reconstruction_threshold: float = Field(
        10.0, gt=0.0, le=255.0,
        description="mean change (0-255) vs the model's reconstruction of the input that counts as changed "
                    "(the VAE's drift cancels, so this sits at text contrast)")
    compare_to: Literal["reconstruction", "input"] = Field(
        "reconstruction", description="reconstruction: decode the control latents (one more VAE decode per "
                                      "window) and compare the output with them; input: compare with the input")
    smoothing_px: int = Field(5, ge=1, le=63, description="side of the averaging box; odd")
    dilate_px: int = Field(3, ge=0, le=64, description="grow changed regions (text outlines, halos)")
    feather_px: int = Field(4, ge=0, le=64, description="width of the soft edge around them")
    temporal_radius: int = Field(2, ge=0, le=16, description="frames over which a change fades in and out")
    temporal_gap: int = Field(4, ge=0, le=16, description="misses of up to this many frames inside a cue are closed")

    @field_validator("smoothing_px")
    @classmethod
    def _odd(cls, value: int) -> int:
        # An odd box is centred on its pixel, so the mask does not drift by half a pixel.
        if value % 2 == 0:
            raise ValueError(f"must be odd, got {value}")
        return value


class ClearConfig(StrictModel):
    """CLEAR: Wan2.1-Fun-V1.1-1.3B-Control + the CLEAR LoRA, run through DiffSynth."""

    model_dir: Path | None = Field(None, description="local dir with the Wan2.1-Fun-V1.1-1.3B-Control files")
    lora: Path | None = Field(None, description="CLEAR LoRA checkpoint (.pt or .safetensors)")
    lora_scale: float = Field(1.0, ge=0.0, le=2.0, description="LoRA strength: alpha/rank for a file without "
                              "stored lora_alpha (CLEAR's release), a multiplier of the stored alpha/rank otherwise")
    steps: int = Field(5, ge=1, le=100, description="flow-matching Euler steps")
    cfg: float = Field(1.0, ge=1.0, le=20.0, description="classifier-free guidance; 1.0 = one DiT pass per step")
    shift: float = Field(5.0, gt=0.0, le=100.0, description="sigma shift of the flow-matching schedule")
    seed: int = Field(0, ge=0)
    prompt: str = Field(DEFAULT_CLEAR_PROMPT, min_length=1)
    max_area: int = Field(1280 * 720, ge=16 * 16, description="model resolution cap in pixels (W*H)")
    resize: Literal["stretch", "cover_crop"] = Field(
        "stretch", description="stretch: the whole frame to the model size (every pixel seen); cover_crop: "
                               "CLEAR's released resize + centre crop (the cropped border keeps the source)")
    windowing: Literal["pixel", "latent"] = Field(
        "pixel", description="pixel: each chunk is one window, overlapping chunks cross-fade in pixels (the job's "
                             "chunking); latent: inside a chunk, DiffSynth's temporal tiler denoises overlapping "
                             "latent windows and blends them every step before one VAE decode (CLEAR's "
                             "--use_sliding_window)")
    latent_window: int = Field(21, ge=1, le=1000, description="windowing latent: latent frames per window "
                               "(DiffSynth's sliding_window_size; 21 latent frames = 81 video frames)")
    latent_stride: int = Field(19, ge=1, le=1000, description="windowing latent: latent frames between window "
                               "starts (DiffSynth's sliding_window_stride; 19 = CLEAR's 8-frame overlap)")
    tiled_vae: bool | Literal["auto"] = Field(
        "auto", description="auto = untiled on a GPU with the memory for it (faster), tiled otherwise (as CLEAR)")
    fast_rope: bool = Field(True, description="rotary embeddings in float32 on CUDA (DiffSynth: float64)")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="auto = bfloat16 on CUDA, float32 on CPU"
    )
    compile: bool = Field(False, description="torch.compile the DiT blocks on CUDA, static shapes per window size "
                          "(the first window of each size pays for it)")
    mask: DifferenceMaskConfig = Field(
        default_factory=DifferenceMaskConfig, description="the soft mask used when remover.composite is on"
    )

    @field_validator("latent_stride")
    @classmethod
    def _stride_within_window(cls, value: int, info) -> int:
        window = info.data.get("latent_window")
        if window is not None and value > window:
            raise ValueError(f"must be <= latent_window ({window}): windows with gaps leave latent frames "
                             f"never denoised, got {value}")
        return value


class LiteConfig(StrictModel):
    """The embedded CPU remover (mask-free): a tiny learned text segmenter, temporal
    propagation of the background along optical flow, spatial inpainting for the rest."""

    detect_short_side: int = Field(270, ge=48, le=1080, description="short side (px) the text segmenter runs at")
    detect_stride: int = Field(4, ge=1, le=32, description="run the segmenter every N frames (masks are interpolated)")
    threshold: float = Field(0.7, gt=0.0, lt=1.0, description="text probability that seeds a text region")
    low_threshold: float = Field(0.5, gt=0.0, lt=1.0, description="probability a seeded region grows through")
    persist_threshold: float = Field(0.35, ge=0.0, lt=1.0,
                                     description="probability a neighbouring keyframe must show to confirm text")
    min_component_px: int = Field(20, ge=0, le=10_000, description="confident pixels a text region needs (working px)")
    dilate_px: float = Field(0.0, ge=0.0, le=8.0, description="mask dilation in working-resolution pixels")
    feather_px: int = Field(1, ge=0, le=16, description="soft mask edge outside the dilated mask (full-res px)")
    flow_short_side: int = Field(270, ge=32, le=2160, description="short side (px) optical flow runs at")
    margin_frac: float = Field(0.06, ge=0.0, le=1.0, description="flow context around the text, x frame long side")
    inpaint_radius: int = Field(3, ge=1, le=32, description="cv2.inpaint radius for what no frame shows")
    num_threads: int = Field(1, ge=1, le=64, description="OpenCV/torch threads (the Ray actor has num_cpus=1)")
    weights: Path | None = Field(None, description="segmenter weights (.npz); None = the shipped ones")
    unblend_boxes: bool = Field(True, description="invert semi-transparent caption boxes instead of inpainting them")
    unblend_glyph_margin: float = Field(0.006, ge=0.0, le=0.1,
                                        description="glyph mask growth inside a box, x frame height (outline, shadow)")


class RemoverConfig(StrictModel):
    backend: Literal["auto", "clear", "lite", "identity"] = Field(
        "auto", description="auto = clear when clear.model_dir is set, else lite"
    )
    composite: bool = Field(
        True, description="keep every pixel outside the remover's mask exactly the source pixel"
    )
    clear: ClearConfig = Field(default_factory=ClearConfig)
    lite: LiteConfig = Field(default_factory=LiteConfig)
    plugin: str | None = Field(
        None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="a custom remover 'package.module:Class' (see removers/base.py); overrides backend",
    )
    plugin_options: dict[str, Any] = Field(default_factory=dict, description="passed to the plugin class")

    def resolved_backend(self) -> Literal["clear", "lite", "identity"]:
        if self.backend != "auto":
            return self.backend
        return "clear" if self.clear.model_dir is not None else "lite"


class StorageConfig(StrictModel):
    """Where remote (fsspec) inputs and outputs live. Unset values fall back to the usual
    AWS_* environment variables, read by s3fs/botocore themselves."""

    endpoint_url: str | None = Field(None, description="S3-compatible endpoint, e.g. http://127.0.0.1:8333")
    region: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    anon: bool = False

    def s3_storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem`` (secrets included: never log this)."""
        options: dict[str, Any] = {}
        if self.anon:
            options["anon"] = True
        if self.access_key_id is not None:
            options["key"] = self.access_key_id.get_secret_value()
        if self.secret_access_key is not None:
            options["secret"] = self.secret_access_key.get_secret_value()
        client_kwargs: dict[str, Any] = {}
        if self.endpoint_url:
            client_kwargs["endpoint_url"] = self.endpoint_url
        if self.region:
            client_kwargs["region_name"] = self.region
        if client_kwargs:
            options["client_kwargs"] = client_kwargs
        return options


class RayConfig(StrictModel):
    address: str | None = Field(None, description="existing cluster (auto, host:port, ray://...); None starts a local one")
    num_gpus_per_actor: float | None = Field(
        None, ge=0.0, le=8.0, description="None = 1 for GPU backends (clear), else 0"
    )
    num_cpus_per_actor: float = Field(1.0, gt=0.0, le=256.0)
    min_actors: int = Field(1, ge=1, le=10_000)
    max_actors: int | None = Field(
        None, ge=1, le=10_000,
        description="None = as many as the cluster fits at start; set it on autoscaling clusters",
    )
    chunk_timeout_s: float = Field(1800.0, gt=0.0, description="a chunk taking longer fails its video")
    allow_cpu_fallback: bool = Field(False, description="run a GPU backend on CPU when the cluster has no GPU")
    gpu_wait_s: float = Field(
        900.0, ge=0.0, description="how long a GPU backend waits for the autoscaler to add a GPU node"
    )
    shared_filesystem: bool = Field(
        False, description="local SRC/DST paths are mounted at the same path on every node"
    )
    dashboard: bool = Field(
        False, description="start the Ray dashboard with a local cluster (costs seconds of start-up and CPU)"
    )
    max_actor_init_deaths: int = Field(
        3, ge=-1, le=1000, description="remover actors that may die while loading the model (-1 = no limit)"
    )

    @field_validator("max_actors")
    @classmethod
    def _max_not_below_min(cls, value: int | None, info) -> int | None:
        min_actors = info.data.get("min_actors")
        if value is not None and min_actors is not None and value < min_actors:
            raise ValueError(f"must be >= min_actors ({min_actors}), got {value}")
        return value


class OutputConfig(StrictModel):
    crf: int = Field(17, ge=0, le=51, description="x264 CRF; 17 is visually lossless")
    preset: X264Preset = "medium"
    comparison: bool = Field(False, description="also write a side-by-side before/after video")
    max_pixels: int = Field(
        8192 * 4320, ge=1, description="refuse frames larger than this (decompression-bomb guard)"
    )


class RemoveJobConfig(StrictModel):
    """`clear-ray remove SRC DST`: remove subtitles from every video under SRC into DST."""

    src: str = Field(..., min_length=1, description="file, directory, glob or s3:// prefix")
    dst: str = Field(..., min_length=1, description="output directory or s3:// prefix")
    remover: RemoverConfig = Field(default_factory=RemoverConfig)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    extensions: tuple[str, ...] = Field(DEFAULT_VIDEO_EXTENSIONS, min_length=1)
    fingerprint: Literal["stat", "content"] = Field(
        "stat", description="stat = size + etag/mtime; content = hash of the bytes"
    )
    force: bool = Field(False, description="process inputs even when the manifest says done")
    retry_failed: bool = Field(False, description="retry quarantined inputs")
    max_attempts: int = Field(3, ge=1, le=100, description="failures before an input is quarantined")
    # One writer per DST (clear_ray/lease.py): a second run exits 3, or waits with wait_for_lease.
    wait_for_lease: bool = Field(False, description="wait while another run writes DST instead of exiting 3")
    lease_wait_timeout_s: float | None = Field(None, gt=0, description="give up waiting for the lease (exit 3)")
    lease_ttl_s: float = Field(120.0, ge=1.0, le=86_400.0,
                               description="a run that stops renewing its DST lease this long is taken over")
    quiet: bool = False

    @field_validator("extensions")
    @classmethod
    def _dotted_lowercase(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in value)


Model = TypeVar("Model", bound=BaseModel)


def load_config(
    model: type[Model],
    *,
    yaml_path: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Model:
    """Build ``model`` from defaults < YAML < environment < ``overrides`` and validate it once.

    ``overrides`` maps dotted field paths (``"chunking.chunk_size"``) to values; ``None``
    values are skipped so unset CLI flags do not mask lower layers. Environment variables
    look like ``CLEAR_RAY_CHUNKING__CHUNK_SIZE=81``; their values are parsed as YAML scalars.
    Raises ConfigError with one line per problem.
    """
    settings: dict[str, Any] = {}
    if yaml_path is not None:
        settings = _read_yaml(Path(yaml_path))
    for dotted, value in _env_settings(model, os.environ if env is None else env).items():
        _set_dotted(settings, dotted, value)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(settings, dotted, value)
    try:
        return model.model_validate(settings)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


def config_fingerprint(config: BaseModel, *, include: set[str] | None = None) -> str:
    """A short stable hash of the settings that change what a job writes (secrets excluded)."""
    data = config.model_dump(mode="json", include=include)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError([f"config file: {path} does not exist"])
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError([f"config file: {path} is not valid YAML ({str(error).splitlines()[0]})"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"config file: {path} must hold a mapping, got {type(data).__name__}"])
    return data


def _env_settings(model: type[BaseModel], env: Mapping[str, str]) -> dict[str, Any]:
    # Only variables whose first segment names a field of this job are taken, so the
    # variables of other jobs (training, benchmarks) can share the prefix.
    found: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX):].lower().split(ENV_NESTING)
        if parts[0] not in model.model_fields:
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        found[".".join(parts)] = value
    return found


def _set_dotted(settings: dict[str, Any], dotted: str, value: Any) -> None:
    node = settings
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def _may_echo(where: str, message: str, item: Mapping[str, Any]) -> bool:
    # Echo the rejected value to help the user, except for credentials and values the
    # message already quotes.
    if "input" not in item or isinstance(item["input"], (dict, list, tuple)):
        return False
    return "got " not in message and "secret" not in where and "key" not in where


def _describe(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "config"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        elif item["type"] == "missing":
            message = "required"
        elif _may_echo(where, message, item):
            message = f"{message} (got {item['input']!r})"
        problems.append(f"{where}: {message}")
    return problems
