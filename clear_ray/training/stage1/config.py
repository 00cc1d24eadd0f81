"""Settings of `clear-ray train-stage1` (defaults: the paper's network at 480p)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from clear_ray.config import StrictModel
from clear_ray.training.settings import RayTrainSettings


class BackboneConfig(StrictModel):
    """One ResNet encoder (there are two). The default is torchvision's ResNet-50; tests use
    ``block: basic, layers: [1, 1, 1, 1], width: 8`` through the same code."""

    block: Literal["bottleneck", "basic"] = "bottleneck"
    layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    width: int = Field(64, ge=4, le=256, description="channels of the first stage (ResNet-50: 64)")
    norm: Literal["batch", "frozen_batch", "group"] = Field(
        "group", description="group: exact under any DDP split; batch/frozen_batch: for ImageNet weights")
    imagenet_weights: Path | None = Field(
        None, description="local torchvision resnet50 state dict (.pth/.safetensors); never downloaded")

    @model_validator(mode="after")
    def _weights_fit(self) -> "BackboneConfig":
        if self.imagenet_weights is not None:
            if (self.block, tuple(self.layers), self.width) != ("bottleneck", (3, 4, 6, 3), 64):
                raise ValueError("imagenet_weights need the ResNet-50 backbone (bottleneck, [3,4,6,3], width 64)")
            if self.norm == "group":
                raise ValueError("imagenet_weights carry BatchNorm statistics: use norm batch or frozen_batch")
        return self


class Stage1ModelConfig(StrictModel):
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    fpn_channels: int = Field(256, ge=8, le=1024, description="FPN fusion width")
    feature_channels: int = Field(256, ge=8, le=1024, description="content / subtitle feature width")


class Stage1LossConfig(StrictModel):
    """CLEAR's Stage I loss: mask (focal + dice + IoU + recall), orthogonality, reconstruction,
    combined by learned (Kendall) uncertainty weights."""

    focal_alpha: float = Field(0.85, gt=0.0, lt=1.0)
    focal_gamma: float = Field(2.0, ge=0.0, le=10.0)
    focal_weight: float = Field(2.0, ge=0.0)
    dice_weight: float = Field(1.5, ge=0.0)
    iou_weight: float = Field(1.0, ge=0.0)
    recall_weight: float = Field(0.1, ge=0.0)
    initial_task_weights: tuple[float, float, float] = Field(
        (2.0, 0.5, 0.3), description="mask, orthogonality, reconstruction (CLEAR's initialisation)")
    learn_task_weights: bool = True

    @field_validator("initial_task_weights")
    @classmethod
    def _positive(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) <= 0:
            raise ValueError(f"must all be > 0, got {value}")
        return value


class Stage1DataConfig(StrictModel):
    supervision: Literal["alpha", "pseudo"] = Field(
        "alpha", description="alpha: the exact burn-in alpha (synthetic pairs); pseudo: CLEAR's pixel-difference rule")
    height: int = Field(480, ge=32, le=2160, description="training frames are resized to this; multiple of 32")
    width: int = Field(832, ge=32, le=3840, description="multiple of 32")
    alpha_threshold: int = Field(0, ge=0, le=254, description="a pixel is text when its alpha is above this")
    hflip: bool = Field(True, description="mirror half the samples (clean, subtitled and mask together)")
    brightness_jitter: float = Field(0.1, ge=0.0, le=0.5, description="same random gain on clean and subtitled")
    dev_frames_per_pair: int = Field(3, ge=1, le=81)
    max_dev_pairs: int = Field(64, ge=1, le=100_000)

    @field_validator("height", "width")
    @classmethod
    def _multiple_of_32(cls, value: int) -> int:
        # The encoders downsample 32x; other sizes would not round-trip through the FPN.
        if value % 32:
            raise ValueError(f"must be a multiple of 32, got {value}")
        return value


class Stage1OptimConfig(StrictModel):
    lr: float = Field(1e-4, gt=0.0, le=1.0)
    weight_decay: float = Field(0.01, ge=0.0, le=1.0)
    warmup_steps: int = Field(500, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0, description="cosine decays to lr * this")
    grad_clip: float = Field(1.0, ge=0.0, description="max gradient norm; 0 = off")


class Stage1TrainConfig(StrictModel):
    """`clear-ray train-stage1 --pairs URI --output URI`."""

    pairs: str = Field(..., min_length=1, description="pairs dataset written by make-pairs (dir or s3://)")
    output: str = Field(..., min_length=1, description="where checkpoints (runs/NAME) and the export go")
    batch_size: int = Field(16, ge=1, le=65_536, description="global batch (frames); a multiple of run.workers")
    max_steps: int = Field(20_000, ge=1, le=10_000_000)
    seed: int = Field(0, ge=0)
    model: Stage1ModelConfig = Field(default_factory=Stage1ModelConfig)
    loss: Stage1LossConfig = Field(default_factory=Stage1LossConfig)
    data: Stage1DataConfig = Field(default_factory=Stage1DataConfig)
    optim: Stage1OptimConfig = Field(default_factory=Stage1OptimConfig)
    run: RayTrainSettings = Field(default_factory=RayTrainSettings)

    @model_validator(mode="after")
    def _batch_splits(self) -> "Stage1TrainConfig":
        if self.batch_size % self.run.workers:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of run.workers ({self.run.workers})")
        return self
