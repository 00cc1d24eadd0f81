"""Stage II settings: the LoRA, the occlusion head, the objective, optimisation, the run."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from clear_ray.config import DEFAULT_CLEAR_PROMPT, StrictModel
from clear_ray.training.settings import RayTrainSettings


class LoraSettings(StrictModel):
    rank: int = Field(64, ge=1, le=1024, description="CLEAR: rank 64")
    alpha: float = Field(64.0, gt=0.0, description="PEFT lora_alpha; the layer scale is alpha / rank")


class HeadSettings(StrictModel):
    """M = sigmoid(conv1x1(SiLU(conv3x3(features)))) on the DiT tokens after ``block``."""

    enabled: bool = True
    block: int = Field(-1, description="DiT block whose output tokens feed the head (negative counts from the end)")
    hidden: int = Field(64, ge=1, le=4096, description="conv3x3 output channels (64: ~0.89 M params at dim 1536)")
    init_bias: float = Field(-2.0, description="last conv: weight 0, this bias (sigmoid(-2) = 0.12)")


class ObjectiveSettings(StrictModel):
    """``paper``: L = L_distill + L_gen + 0.1 L_sparse, w = (1 + a_k M)(eps + delta)^0.8,
    a_k = 5 + 10|sin(2 pi k / 40)|. ``clear_released``: CLEAR's train_stage2.py weighting,
    clamp((1 + a_k M)(delta + 1e-6)^1.5, 0.1, 20) with a 5 -> 15 -> 5 triangle over 20
    steps, plus its multiscale Charbonnier temporal loss with a learned weight."""

    variant: Literal["paper", "clear_released"] = "paper"
    prior: Literal["alpha", "stage1"] = Field("alpha", description="M_prior: exact alpha of synthetic pairs or the Stage I prior")
    distill_weight: float = Field(1.0, ge=0.0)
    sparse_weight: float = Field(0.1, ge=0.0)
    kl_weight: float = Field(0.5, ge=0.0, description="inside L_sparse: mean(M) + kl_weight * KL(M || M_prior)")
    eps: float = Field(1e-3, gt=0.0, description="the paper's epsilon in (eps + delta)^0.8")
    temporal_weight_init: float = Field(0.1, gt=0.0, description="clear_released: learned temporal-loss weight, initial value")


class OptimSettings(StrictModel):
    lr: float = Field(1e-4, gt=0.0, description="AdamW, as CLEAR")
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0, description="cosine decays to lr * this")
    grad_clip: float = Field(1.0, gt=0.0)


class Stage2Config(StrictModel):
    pairs: str = Field(..., description="pairs dataset (make-pairs output): local dir or s3://")
    model_dir: Path = Field(..., description="Wan2.1-Fun-V1.1-1.3B-Control files (the frozen base)")
    output: str = Field(..., description="local dir or s3:// prefix: runs/NAME checkpoints, lora + head exports")
    stage1: str | None = Field(None, description="Stage I prior export (objective.prior = stage1)")
    split: str = Field("train", description="index rows of this split are trained on")
    prompt: str = Field(DEFAULT_CLEAR_PROMPT, min_length=1)
    frames: int = Field(17, ge=1, description="frames per training window (4n+1); CLEAR: 81")
    height: int = Field(480, ge=16, description="model resolution (multiple of 16); pairs are resized to it")
    width: int = Field(832, ge=16)
    shift: float = Field(5.0, gt=0.0, description="flow-matching sigma shift, as CLEAR trains (and samples)")
    max_steps: int = Field(1000, ge=1, description="optimizer steps")
    batch_size: int = Field(8, ge=1, description="global batch: windows per optimizer step, over all workers")
    micro_batch: int = Field(1, ge=1, description="windows per forward pass on one worker")
    seed: int = Field(0, ge=0)
    strategy: Literal["ddp", "fsdp"] = Field("ddp", description="ddp: whole model per worker (the 1.3B base + LoRA "
                                             "fit one GPU); fsdp: FSDP2 shards per DiT block (checkpoints identical)")
    gradient_checkpointing: bool = True
    bf16: bool = Field(True, description="frozen base in bf16 and bf16 autocast on CUDA (always fp32 on CPU)")
    tiled_vae: bool = Field(False, description="tiled VAE encode (CLEAR: on at 480p)")
    latent_cache: str | None = Field(None, description="latents written by `encode_latents` (else encoded on the fly); "
                                     "with prior = stage1 the prior still runs on each window's pixels")
    lora: LoraSettings = Field(default_factory=LoraSettings)
    head: HeadSettings = Field(default_factory=HeadSettings)
    objective: ObjectiveSettings = Field(default_factory=ObjectiveSettings)
    optim: OptimSettings = Field(default_factory=OptimSettings)
    run: RayTrainSettings = Field(default_factory=lambda: RayTrainSettings(name="stage2"))

    @model_validator(mode="after")
    def _consistent(self) -> "Stage2Config":
        if self.frames % 4 != 1:
            raise ValueError(f"frames must be 4n+1 (the VAE compresses time 4x), got {self.frames}")
        if self.height % 16 or self.width % 16:
            raise ValueError(f"height and width must be multiples of 16, got {self.width}x{self.height}")
        if self.objective.prior == "stage1" and self.stage1 is None:
            raise ValueError("objective.prior = stage1 needs --stage1 (the Stage I prior export)")
        per_step = self.run.workers * self.micro_batch
        if self.batch_size % per_step:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of workers x micro_batch ({per_step})")
        return self

    @property
    def accumulation(self) -> int:
        """Forward/backward passes per optimizer step on each worker."""
        return self.batch_size // (self.run.workers * self.micro_batch)
