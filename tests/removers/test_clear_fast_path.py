"""The GPU fast path's pieces, on CPU: the float32 RoPE equals DiffSynth's float64 one to
float32 rounding, the attention kernel is named, tiling resolves, and the remover's
fingerprint changes with what it resolved at run time (dtype, attention kernel)."""

from __future__ import annotations

import pytest
import torch

from clear_ray.models import fast_path
from clear_ray.removers.clear import runtime_fingerprint


def test_float32_rope_matches_diffsynths_float64_rope():
    from diffsynth.models import wan_video_dit

    num_heads, head_dim, tokens = 2, 48, 3 * 4 * 5
    f, h, w = wan_video_dit.precompute_freqs_cis_3d(head_dim)
    freqs = torch.cat([f[:3].view(3, 1, 1, -1).expand(3, 4, 5, -1), h[:4].view(1, 4, 1, -1).expand(3, 4, 5, -1),
                       w[:5].view(1, 1, 5, -1).expand(3, 4, 5, -1)], dim=-1).reshape(tokens, 1, -1)
    x = torch.randn(2, tokens, num_heads * head_dim, generator=torch.Generator().manual_seed(0))
    original = getattr(wan_video_dit, "_clear_ray_original_rope_apply", wan_video_dit.rope_apply)
    reference = original(x, freqs, num_heads)
    ours = fast_path.rope_apply_float32(x, freqs, num_heads)
    assert ours.dtype == x.dtype and ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, atol=2e-6, rtol=1e-5)
    assert (ours - x).abs().max() > 0.1  # it really rotates


def test_float32_rope_swaps_in_and_out():
    from diffsynth.models import wan_video_dit

    try:
        fast_path.use_float32_rope(True)
        assert wan_video_dit.rope_apply is fast_path.rope_apply_float32
    finally:
        fast_path.use_float32_rope(False)
    assert wan_video_dit.rope_apply is wan_video_dit._clear_ray_original_rope_apply


def test_attention_backend_is_named_and_tiling_stays_on_cpu():
    name = fast_path.attention_backend("cpu", torch.float32, num_heads=2, head_dim=32, tokens=64)
    assert name.startswith("cpu:") and name != "cpu:error"
    assert fast_path.resolve_vae_tiling("auto", "cpu", 832 * 480) is True
    assert fast_path.resolve_vae_tiling(False, "cpu", 832 * 480) is False
    with fast_path.attention_kernels("cpu"):  # a no-op off CUDA
        torch.nn.functional.scaled_dot_product_attention(*(torch.randn(1, 2, 8, 32),) * 3)


def test_runtime_fingerprint_changes_with_dtype_and_attention_backend():
    runtime = {"device": "cuda", "dtype": "bfloat16", "attention": "cuda:cudnn_attention", "rope": "float32",
               "vae_tiled": False, "compiled": False}
    base = runtime_fingerprint("abc", runtime)
    assert runtime_fingerprint("abc", dict(runtime)) == base
    for field, other in (("dtype", "float32"), ("attention", "cuda:flash_attention"), ("device", "cpu"),
                         ("vae_tiled", True), ("rope", "float64")):
        assert runtime_fingerprint("abc", {**runtime, field: other}) != base, field
    assert runtime_fingerprint("abd", runtime) != base


@pytest.mark.slow
def test_the_remover_reports_and_fingerprints_what_it_resolved(tmp_path):
    from clear_ray.config import RemoverConfig
    from clear_ray.removers import load_remover
    from clear_ray.testing.tiny_wan import write_tiny_clear_model

    model = write_tiny_clear_model(tmp_path / "model")

    def remover(dtype: str):
        return load_remover(RemoverConfig(backend="clear", clear={
            "model_dir": model.model_dir, "lora": model.lora_path, "steps": 1, "dtype": dtype}), device="cpu")

    fp32, bf16 = remover("float32"), remover("bfloat16")
    assert fp32.runtime["dtype"] == "float32" and bf16.runtime["dtype"] == "bfloat16"
    assert fp32.runtime["attention"].startswith("cpu:") and fp32.runtime["vae_tiled"] is True
    assert fp32.runtime["rope"] == "float64"  # the fast RoPE is for CUDA only; CPU output stays CLEAR's
    assert fp32.fingerprint() != bf16.fingerprint()
    assert fp32.fingerprint() == runtime_fingerprint(type(fp32).fingerprint_for(fp32.config), fp32.runtime)
