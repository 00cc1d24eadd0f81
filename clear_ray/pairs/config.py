"""`clear-ray make-pairs SRC DST` settings (layered like every job: YAML < env < flags)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from clear_ray.config import (DEFAULT_VIDEO_EXTENSIONS, OutputConfig, RayConfig, StorageConfig, StrictModel)

DEFAULT_LANGUAGES = ("zh", "en", "ja", "ko", "ar", "ru", "fr", "de")


class WindowConfig(StrictModel):
    """Which windows of each clean video become pairs."""

    frames: int = Field(81, ge=5, le=1001, description="frames per window; 4n+1 (81 = 21 Wan latent frames)")
    per_video: int | None = Field(4, ge=1, le=100_000, description="windows per video; None = as many as fit")
    stride: int | None = Field(None, ge=1, description="frames between window starts; None = spread evenly")

    @field_validator("frames")
    @classmethod
    def _four_n_plus_one(cls, value: int) -> int:
        if (value - 1) % 4 != 0:
            raise ValueError(f"must be 4n+1 (e.g. 81), got {value}")
        return value

    @model_validator(mode="after")
    def _bounded(self) -> "WindowConfig":
        if self.per_video is None and self.stride is None:
            raise ValueError("set per_video or stride (both unset would mean every start frame)")
        return self


class SynthesisConfig(StrictModel):
    """What gets burnt in (the generator is clear_ray.synth; these pick from it)."""

    languages: tuple[str, ...] = Field(DEFAULT_LANGUAGES, min_length=1)
    text_free_fraction: float = Field(0.1, ge=0.0, le=1.0, description="share of windows left without text")
    split: Literal["train", "dev", "test"] = Field(
        "train", description="the synth split whose fonts, texts and styles are used")
    dev_fraction: float = Field(0.0, ge=0.0, le=1.0,
                                description="share of clean videos (by path hash) that become dev pairs instead")

    @field_validator("languages")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from clear_ray.synth.texts import LANGUAGES

        unknown = [code for code in value if code not in LANGUAGES]
        if unknown:
            raise ValueError(f"unknown languages {unknown}; known: {', '.join(LANGUAGES)}")
        return tuple(dict.fromkeys(value))


class MakePairsConfig(StrictModel):
    """`clear-ray make-pairs SRC DST`: burn subtitles into windows of clean videos."""

    src: str = Field(..., min_length=1, description="clean videos: file, directory, glob or s3:// prefix")
    dst: str = Field(..., min_length=1, description="pairs dataset: directory or s3:// prefix")
    seed: int = Field(0, ge=0, description="same seed and inputs, same pixels and alpha")
    windows: WindowConfig = Field(default_factory=WindowConfig)
    synthesis: SynthesisConfig = Field(default_factory=SynthesisConfig)
    from_pairs: bool = Field(False, description="SRC is CLEAR's layout (clean/NAME.mp4 + subtitled/NAME_with_subtitle.mp4):"
                                                " index it with pseudo-label masks instead of burning in")
    export_clear_layout: str | None = Field(None, description="also write the pairs as CLEAR's layout here")
    output: OutputConfig = Field(default_factory=OutputConfig, description="encoder for --export-clear-layout")
    storage: StorageConfig = Field(default_factory=StorageConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    extensions: tuple[str, ...] = Field(DEFAULT_VIDEO_EXTENSIONS, min_length=1)
    force: bool = Field(False, description="rewrite shards that exist")
    quiet: bool = False

    @field_validator("extensions")
    @classmethod
    def _dotted_lowercase(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in value)
