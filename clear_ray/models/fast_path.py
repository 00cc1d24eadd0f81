"""The CLEAR backend's fast path on a GPU: exact attention through the fastest SDPA
kernel, RoPE without float64, static-shape compilation, the VAE untiled where memory
allows. Each piece says what it changes in the output, because the model fingerprint
and the manifest must (a resumed job must never mix chunks made differently).

- Attention: DiffSynth's Wan attention falls through to ``F.scaled_dot_product_attention``
  when no flash-attn / sage package is installed (none is, here or in our image). Inside
  ``attention_kernels`` SDPA may pick, in this order, cuDNN, FlashAttention-2, memory-
  efficient, math: all exact attention, differing only in float rounding.
  ``attention_backend`` names the kernel torch actually picks for the window's shape.
- RoPE: DiffSynth multiplies queries and keys by the rotary phases in complex128 (a
  float64 round trip of a 32,760-token x 1,536 tensor per block, twice, per step). The
  float32 rotation here differs from it by float32 rounding (~1e-7 relative).
- VAE tiling: the Wan VAE runs causally over time, so untiled it holds one latent frame's
  activations at full resolution: ~16 GiB peak at 480x832 in bf16 (an estimate scaled
  from the decoder's widest full-resolution activation; measure with
  benchmarks/clear_gpu.py). Tiled and untiled decodes differ near the tile seams.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import torch

# Preference order for SDPA kernels: all compute exact attention.
ATTENTION_PREFERENCE = ("CUDNN_ATTENTION", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH")
# Untiled VAE peak memory per output pixel of one frame, bytes (see the module docstring):
# ~16 GiB for 480x832, so ~43 KB per pixel; with 2x headroom for the allocator.
_UNTILED_VAE_BYTES_PER_PIXEL = 2 * 16 * 2**30 / (480 * 832)


@contextlib.contextmanager
def attention_kernels(device: str) -> Iterator[None]:
    """SDPA restricted to exact kernels, tried in ``ATTENTION_PREFERENCE`` order (CUDA only;
    on CPU torch's own choice stands)."""
    if not str(device).startswith("cuda"):
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([getattr(SDPBackend, name) for name in ATTENTION_PREFERENCE], set_priority=True):
        yield


def attention_backend(device: str, dtype: "torch.dtype", num_heads: int, head_dim: int, tokens: int) -> str:
    """The attention kernel a DiT pass of ``tokens`` tokens uses, e.g. ``cuda:cudnn_attention``
    or ``cpu:flash_attention``; ``flash_attn_3`` etc. when DiffSynth found such a package."""
    import torch
    from diffsynth.models import wan_video_dit

    for flag, name in (("FLASH_ATTN_3_AVAILABLE", "flash_attn_3"), ("FLASH_ATTN_2_AVAILABLE", "flash_attn_2"),
                       ("SAGE_ATTN_AVAILABLE", "sage_attention")):
        if getattr(wan_video_dit, flag, False):
            return f"{str(device).split(':')[0]}:{name}"
    from torch.nn.attention import SDPBackend

    probe = torch.empty(1, num_heads, tokens, head_dim, device=device, dtype=dtype)
    with attention_kernels(device):
        choice = SDPBackend(torch._fused_sdp_choice(probe, probe, probe))
    return f"{str(device).split(':')[0]}:{choice.name.lower()}"


def rope_apply_float32(x: "torch.Tensor", freqs: "torch.Tensor", num_heads: int) -> "torch.Tensor":
    """DiffSynth's ``rope_apply`` (x rotated by the complex phases ``freqs``) in float32
    real arithmetic: (a + ib)(c + is) = (ac - bs) + i(as + bc) on interleaved pairs."""
    import torch

    batch, tokens, _ = x.shape
    pairs = x.float().reshape(batch, tokens, num_heads, -1, 2)
    cos, sin = freqs.real.float(), freqs.imag.float()  # (tokens, 1, head_dim / 2)
    real, imag = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1)
    return rotated.flatten(2).to(x.dtype)


def use_float32_rope(enabled: bool = True) -> None:
    """Swap DiffSynth's float64 RoPE for ``rope_apply_float32`` in this process (the Wan DiT
    looks the function up in its module at call time); ``enabled=False`` restores it."""
    from diffsynth.models import wan_video_dit

    original = getattr(wan_video_dit, "_clear_ray_original_rope_apply", None)
    if original is None:
        original = wan_video_dit.rope_apply
        wan_video_dit._clear_ray_original_rope_apply = original
    wan_video_dit.rope_apply = rope_apply_float32 if enabled else original


def untiled_vae_fits(device: str, frame_pixels: int) -> bool:
    """Whether the VAE can run untiled on ``device`` for frames of ``frame_pixels``: CUDA
    with enough free memory by the estimate above. Never on CPU (tiling bounds host memory
    there)."""
    if not str(device).startswith("cuda"):
        return False
    import torch

    free_bytes, _ = torch.cuda.mem_get_info(torch.device(device))
    return free_bytes >= _UNTILED_VAE_BYTES_PER_PIXEL * frame_pixels


def resolve_vae_tiling(setting: "bool | str", device: str, frame_pixels: int) -> bool:
    """``tiled_vae`` as the remover runs it: ``auto`` tiles unless the untiled VAE fits."""
    if setting == "auto":
        return not untiled_vae_fits(device, frame_pixels)
    return bool(setting)


def compile_dit_static(pipe: Any) -> None:
    """torch.compile the DiT blocks with static shapes: one graph per window resolution
    (a library has few), no shape guards on every call."""
    pipe.compile_pipeline(mode="default", dynamic=False)
