"""Stage II network: the frozen Wan DiT with a trainable LoRA, plus the occlusion head.

``Stage2Model.forward`` is one DiT pass through ``clear_ray.models.denoise.predict_velocity``
(DiffSynth's ``model_fn_wan_video``, the call inference makes) that also returns the head's
occlusion map M. The head reads the tokens a DiT block outputs (captured by a forward hook,
so the DiT code is not copied) on the token grid (T', H/16, W/16), and M is brought to the
latent grid (T', H/8, W/8) where the flow-matching loss lives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from clear_ray.training.stage2.config import Stage2Config


class OcclusionHead(nn.Module):
    """M = sigmoid(conv1x1(SiLU(conv3x3(features)))), per latent frame on the token grid.
    The last conv starts at weight 0, bias ``init_bias``: M starts flat at sigmoid(bias)."""

    def __init__(self, dim: int, hidden: int = 64, init_bias: float = -2.0):
        super().__init__()
        self.conv3 = nn.Conv2d(dim, hidden, kernel_size=3, padding=1)
        self.conv1 = nn.Conv2d(hidden, 1, kernel_size=1)
        nn.init.zeros_(self.conv1.weight)
        nn.init.constant_(self.conv1.bias, init_bias)

    def forward(self, tokens_bld: torch.Tensor, grid_fhw: tuple[int, int, int]) -> torch.Tensor:
        """(B, f*h*w, D) tokens -> (B, 1, f, h, w) probabilities."""
        frames, height, width = grid_fhw
        batch, _, dim = tokens_bld.shape
        maps = tokens_bld.reshape(batch, frames, height, width, dim).permute(0, 1, 4, 2, 3)
        maps = maps.reshape(batch * frames, dim, height, width).to(self.conv3.weight.dtype)
        logits = self.conv1(nn.functional.silu(self.conv3(maps)))
        return torch.sigmoid(logits.float()).reshape(batch, frames, 1, height, width).permute(0, 2, 1, 3, 4)


class Stage2Model(nn.Module):
    """DiT (LoRA-injected, base frozen) + occlusion head; trainable: LoRA factors and head."""

    def __init__(self, dit: nn.Module, head: OcclusionHead | None, head_block: int = -1):
        super().__init__()
        self.dit = dit
        self.head = head
        self.head_block = head_block % len(dit.blocks)
        self._captured: list[torch.Tensor] = []
        dit.blocks[self.head_block].register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        # Under gradient checkpointing the block runs again in backward; only the first
        # (graph-building) call of a forward is kept.
        if self._recording and not self._captured:
            self._captured.append(output)

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                control: dict[str, torch.Tensor], *, gradient_checkpointing: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Velocity (B, 16, T', H/8, W/8) and M (B, 1, T', H/8, W/8) or None without a head."""
        from clear_ray.models.denoise import predict_velocity

        self._captured.clear()
        self._recording = self.head is not None
        try:
            velocity = predict_velocity(self.dit, latents, timestep, context, control,
                                        gradient_checkpointing=gradient_checkpointing and self.training)
        finally:
            self._recording = False
        if self.head is None:
            return velocity, None
        patch_t, patch_h, patch_w = self.dit.patch_size
        grid = (latents.shape[2] // patch_t, latents.shape[3] // patch_h, latents.shape[4] // patch_w)
        occlusion = self.head(self._captured.pop(), grid)
        occlusion = occlusion.repeat_interleave(patch_t, 2).repeat_interleave(patch_h, 3).repeat_interleave(patch_w, 4)
        return velocity, occlusion

    _recording = False


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every trainable tensor (LoRA factors, head, learned loss weights) by name."""
    return {name: param.detach() for name, param in model.named_parameters() if param.requires_grad}


def build_stage2_model(dit: nn.Module, config: "Stage2Config", *, device: str | torch.device = "cpu",
                       seed: int = 0) -> Stage2Model:
    """Inject the LoRA into ``dit`` (in place) and add the head; LoRA and head in fp32 on
    ``device`` whatever the base's dtype (fp32 master weights over a bf16 base on GPU)."""
    from clear_ray.models.lora_peft import inject_lora

    torch.manual_seed(seed)
    inject_lora(dit, rank=config.lora.rank, alpha=config.lora.alpha, lora_dtype=torch.float32, seed=seed)
    head = None
    if config.head.enabled:
        head = OcclusionHead(dit.dim, config.head.hidden, config.head.init_bias).to(device=device, dtype=torch.float32)
    return Stage2Model(dit, head, config.head.block)


def parameter_counts(model: Stage2Model) -> dict[str, int]:
    lora = sum(p.numel() for n, p in model.dit.named_parameters() if p.requires_grad)
    head = sum(p.numel() for p in model.head.parameters()) if model.head is not None else 0
    frozen = sum(p.numel() for p in model.dit.parameters() if not p.requires_grad)
    return {"lora": lora, "head": head, "trainable": lora + head, "frozen": frozen}
