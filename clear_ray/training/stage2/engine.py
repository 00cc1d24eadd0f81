"""One worker's Stage II machinery: models on the device, latents, one micro-step's loss.

The recipe (``recipe.py``) drives it under Ray Train; tests drive it directly. Built the
same way inference builds the CLEAR pipeline (``clear_ray.models.wan.load_pipeline``): the
prompt's T5 context is computed once and the text encoder dropped; the VAE encodes windows
on the fly unless latents come from the cache.

Flow matching as CLEAR trains it: DiffSynth's FlowMatchScheduler("Wan") with 1000 training
timesteps at shift 5; a sample draws timestep index i uniformly, x_t = (1 - s_i) x0 + s_i n,
and the target velocity is n - x0. Control = the subtitled window's latents, y = [control,
zeros], zero CLIP feature, through ``model_fn_wan_video`` like the inference path.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from clear_ray.training.stage2.config import Stage2Config

TRAIN_TIMESTEPS = 1000


class Stage2Module(nn.Module):
    """Model + objective in one module: what DDP wraps and what checkpoints hold."""

    def __init__(self, model: nn.Module, objective: nn.Module):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, noisy, timestep, context, control, *, gradient_checkpointing: bool, **loss_inputs):
        velocity, occlusion = self.model(noisy, timestep, context, control, gradient_checkpointing=gradient_checkpointing)
        return self.objective(velocity=velocity, occlusion=occlusion, noisy=noisy, **loss_inputs)


class Stage2Engine:
    def __init__(self, config: Stage2Config, device: str | torch.device = "cpu", *, keep_vae: bool | None = None):
        from diffsynth.diffusion.flow_match import FlowMatchScheduler

        from clear_ray.models.files import locate_model_files
        from clear_ray.models.wan import encode_prompt, load_pipeline
        from clear_ray.training.stage2.losses import Stage2Objective
        from clear_ray.training.stage2.model import build_stage2_model

        self.config, self.device = config, torch.device(device)
        cuda = self.device.type == "cuda"
        self.dtype = torch.bfloat16 if cuda and config.bf16 else torch.float32  # no bf16 math on this CPU class
        # 1. The frozen base (same loader as inference), the constant prompt's context:
        #    from the latent cache (no T5, no VAE) or computed once here.
        files = locate_model_files(config.model_dir)
        if config.latent_cache is not None and not keep_vae:
            from clear_ray.models.wan import assemble_pipeline, load_component
            from clear_ray.training.stage2.latent_cache import read_context
            from clear_ray.training.storage import fsspec_options

            self.pipe = assemble_pipeline(str(self.device), self.dtype,
                                          dit=load_component(files, "dit", str(self.device), self.dtype))
            context = read_context(config.latent_cache, fsspec_options(config.run.storage))
            self.context = context.to(self.device, self.dtype)
        else:
            self.pipe = load_pipeline(files, str(self.device), self.dtype)
            self.context = encode_prompt(self.pipe, config.prompt)
            self.pipe.text_encoder = None
        # 2. LoRA + head (fp32), the objective (its learned weight, if any, trains too).
        model = build_stage2_model(self.pipe.dit, config, device=self.device, seed=config.seed)
        objective = Stage2Objective(config.objective.variant, distill_weight=config.objective.distill_weight,
                                    sparse_weight=config.objective.sparse_weight, kl_weight=config.objective.kl_weight,
                                    eps=config.objective.eps, temporal_weight_init=config.objective.temporal_weight_init)
        self.module = Stage2Module(model, objective.to(self.device))
        # 3. The training noise schedule and, for prior = stage1, the frozen Stage I network.
        self.scheduler = FlowMatchScheduler("Wan")
        self.scheduler.set_timesteps(TRAIN_TIMESTEPS, training=True, shift=config.shift)
        self.prior_network = None
        if config.objective.prior == "stage1":
            from clear_ray.training.stage1 import load_prior
            from clear_ray.training.storage import fsspec_options

            self.prior_network = load_prior(config.stage1, storage_options=fsspec_options(config.run.storage),
                                            device=str(self.device)).eval()

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [param for param in self.module.parameters() if param.requires_grad]

    # -- inputs --------------------------------------------------------------------------
    def latents(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Clean latents x0, control latents and the latent-grid prior for a batch of windows."""
        if "clean_latents" in batch:  # from the latent cache
            out = {"clean": batch["clean_latents"], "control": batch["control_latents"], "prior": batch.get("prior")}
        else:
            from clear_ray.models.denoise import encode_video

            with torch.no_grad():
                clean = [encode_video(self.pipe, frames.numpy(), tiled=self.config.tiled_vae)[0]
                         for frames in batch["clean_u8"]]
                control = [encode_video(self.pipe, frames.numpy(), tiled=self.config.tiled_vae)[0]
                           for frames in batch["subtitled_u8"]]
            out = {"clean": torch.stack(clean), "control": torch.stack(control), "prior": batch.get("prior")}
        if out["prior"] is None:
            out["prior"] = self.stage1_prior(batch["subtitled_u8"])
        return {name: tensor.to(self.device) for name, tensor in out.items()}

    def stage1_prior(self, subtitled_u8: torch.Tensor) -> torch.Tensor:
        from clear_ray.training.stage1 import predict_masks
        from clear_ray.training.stage2.samples import pool_to_latent_grid

        if self.prior_network is None:
            raise ValueError("the batch carries no prior and no Stage I prior is loaded")
        maps = [pool_to_latent_grid(predict_masks(self.prior_network, frames.numpy())) for frames in subtitled_u8]
        return torch.stack([torch.from_numpy(m)[None] for m in maps])

    def noise_and_timesteps(self, seeds: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample, from its own seed: noise shaped like one latent, and the timestep index."""
        noises, indices = [], []
        for seed in seeds.tolist():
            generator = torch.Generator().manual_seed(int(seed))
            indices.append(int(torch.randint(0, TRAIN_TIMESTEPS, (1,), generator=generator)))
            noises.append(torch.randn(like.shape[1:], generator=generator, dtype=torch.float32))
        return torch.stack(noises), torch.tensor(indices)

    # -- one micro-step -------------------------------------------------------------------
    def loss(self, module: nn.Module, batch: dict[str, Any], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The objective on one micro-batch (``module`` is ``self.module`` or its DDP wrapper)."""
        from clear_ray.models.denoise import control_from_latents

        inputs = self.latents(batch)
        clean = inputs["clean"].float()
        noise, index = self.noise_and_timesteps(batch["noise_seed"], clean)
        noise = noise.to(self.device)
        sigma = self.scheduler.sigmas[index].to(self.device, torch.float32)
        timestep = self.scheduler.timesteps[index].to(self.device, self.dtype)
        noisy = (1 - sigma.view(-1, 1, 1, 1, 1)) * clean + sigma.view(-1, 1, 1, 1, 1) * noise
        control = control_from_latents(inputs["control"].to(self.dtype))
        context = self.context.expand(clean.shape[0], -1, -1)
        autocast = torch.autocast(device_type=self.device.type, dtype=torch.bfloat16,
                                  enabled=self.device.type == "cuda" and self.config.bf16)
        with autocast:
            return module(noisy.to(self.dtype), timestep, context, control,
                          gradient_checkpointing=self.config.gradient_checkpointing, target=noise - clean,
                          prior=inputs["prior"], step=step, sigma=sigma, clean=clean)

    # -- the trainer's own denoising (what the exported LoRA must reproduce) ---------------
    @torch.no_grad()
    def denoise(self, subtitled_thwc_u8, *, steps: int, seed: int = 0, shift: float | None = None) -> torch.Tensor:
        """A window through the same sampler inference uses, with the training model
        (unfused PEFT LoRA). Returns the decoded video (1, 3, T, H, W) in [-1, 1]."""
        from clear_ray.models.denoise import ClearDenoiser

        was_training = self.module.training
        self.module.eval()
        try:
            denoiser = ClearDenoiser(self.pipe, self.context, None, steps=steps, cfg=1.0,
                                     shift=self.config.shift if shift is None else shift, seed=seed,
                                     tiled=self.config.tiled_vae)
            video, _ = denoiser(subtitled_thwc_u8)
        finally:
            self.module.train(was_training)
        return video
