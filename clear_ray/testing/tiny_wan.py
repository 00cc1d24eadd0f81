"""Tiny random-weight Wan2.1-Fun-Control models, saved in the real model-dir layout.

``write_tiny_clear_model(dest)`` writes what a user's ``--model-dir`` holds, at toy size,
built from DiffSynth's own classes::

    dest/model/diffusion_pytorch_model.safetensors   WanModel, in_dim 48 (Fun-Control layout)
    dest/model/models_t5_umt5-xxl-enc-bf16.pth       WanTextEncoder (bf16, as published)
    dest/model/Wan2.1_VAE.pth                        the VAE's inner VideoVAE_ (no "model." prefix)
    dest/model/google/umt5-xxl/                      a T5 tokenizer built in memory, saved
    dest/model/clear_ray_architecture.json           the toy sizes (DiffSynth cannot detect them)
    dest/clear_lora.pt                               a CLEAR-layout LoRA: {"model_state_dict": ...}

and returns the paths, so any test (the Ray end-to-end test too) can run
``clear-ray remove --backend clear --model-dir ... --lora ...`` on it in seconds.

From a shell: ``python -m clear_ray.testing.tiny_wan DIR [--lora FILE] [--seed N]`` writes
the model dir at DIR (and a random CLEAR-layout LoRA at FILE).
"""

from __future__ import annotations

import argparse
import json
import string
from dataclasses import dataclass
from pathlib import Path

TINY_DIT = {
    "has_image_input": True, "patch_size": [1, 2, 2], "in_dim": 48, "dim": 64, "ffn_dim": 128,
    "freq_dim": 32, "text_dim": 32, "out_dim": 16, "num_heads": 2, "num_layers": 2, "eps": 1e-06,
    "has_ref_conv": True,
}  # head_dim 32: (head_dim // 3) must be even for Wan's 3-D RoPE
TINY_VAE = {"z_dim": 16, "dim": 8, "num_res_blocks": 1}
TINY_TEXT_ENCODER = {"vocab": 128, "dim": 32, "dim_attn": 32, "dim_ffn": 64, "num_heads": 2, "num_layers": 1,
                     "num_buckets": 8}
# CLEAR's LoRA targets (peft target_modules "q,k,v,o,ffn.0,ffn.2"), per DiT block.
LORA_TARGETS = [f"{attn}.{proj}" for attn in ("self_attn", "cross_attn") for proj in "qkvo"] + ["ffn.0", "ffn.2"]


@dataclass(frozen=True)
class TinyClearModel:
    model_dir: Path
    lora_path: Path
    lora_rank: int


def build_tiny_dit(seed: int = 0, **overrides):
    import torch
    from diffsynth.models.wan_video_dit import WanModel

    torch.manual_seed(seed)
    return WanModel(**{**TINY_DIT, **overrides}).eval()


def lora_state_dict(num_layers: int, dim: int, ffn_dim: int, rank: int, *, seed: int = 1, prefix: str = "pipe.dit.",
                    adapter: str | None = "default", scale: float = 0.2, device: str = "cpu") -> dict:
    """Random LoRA factors in CLEAR's layout for a DiT of this size (``device="meta"`` for
    the real size without memory)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    tail = f".{adapter}.weight" if adapter else ".weight"
    factors = {}
    for block in range(num_layers):
        for target in LORA_TARGETS:
            in_features = ffn_dim if target == "ffn.2" else dim
            out_features = ffn_dim if target == "ffn.0" else dim
            name = f"{prefix}blocks.{block}.{target}"
            if device == "meta":
                down = torch.empty(rank, in_features, device="meta")
                up = torch.empty(out_features, rank, device="meta")
            else:
                down = torch.randn(rank, in_features, generator=generator) * scale
                up = torch.randn(out_features, rank, generator=generator) * scale
            factors[f"{name}.lora_A{tail}"] = down
            factors[f"{name}.lora_B{tail}"] = up
    return factors


def save_tiny_tokenizer(directory: Path) -> None:
    """A T5 tokenizer (Unigram over single characters) built in memory and saved as
    ``save_pretrained`` saves google/umt5-xxl (tokenizer.json + tokenizer_config.json)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = ["<pad>", "</s>", "<unk>"] + ["\u2581" + c for c in string.ascii_lowercase]
    pieces += list(string.ascii_letters + string.digits + string.punctuation)
    backend = Tokenizer(models.Unigram([(piece, -float(i)) for i, piece in enumerate(pieces)], unk_id=2))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    assert len(pieces) <= TINY_TEXT_ENCODER["vocab"]
    tokenizer = T5TokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                                extra_ids=0)
    tokenizer.save_pretrained(str(directory))


def write_tiny_model_dir(model_dir: Path, *, seed: int = 0, dit_overrides: dict | None = None) -> Path:
    """The five entries of a model dir at toy size (see the module docstring)."""
    import torch
    from diffsynth.models.wan_video_text_encoder import WanTextEncoder
    from diffsynth.models.wan_video_vae import VideoVAE_
    from safetensors.torch import save_file

    model_dir.mkdir(parents=True, exist_ok=True)
    dit_kwargs = {**TINY_DIT, **(dit_overrides or {})}
    dit = build_tiny_dit(seed, **(dit_overrides or {}))
    save_file({k: v.contiguous() for k, v in dit.state_dict().items()},
              str(model_dir / "diffusion_pytorch_model.safetensors"))
    torch.manual_seed(seed + 1)
    text_encoder = WanTextEncoder(**TINY_TEXT_ENCODER)
    torch.save({k: v.to(torch.bfloat16) for k, v in text_encoder.state_dict().items()},
               model_dir / "models_t5_umt5-xxl-enc-bf16.pth")
    torch.manual_seed(seed + 2)
    vae = VideoVAE_(dim=TINY_VAE["dim"], z_dim=TINY_VAE["z_dim"], num_res_blocks=TINY_VAE["num_res_blocks"])
    torch.save(vae.state_dict(), model_dir / "Wan2.1_VAE.pth")
    save_tiny_tokenizer(model_dir / "google" / "umt5-xxl")
    architecture = {"dit": dit_kwargs, "vae": TINY_VAE, "text_encoder": TINY_TEXT_ENCODER}
    (model_dir / "clear_ray_architecture.json").write_text(json.dumps(architecture, indent=2))
    return model_dir


def write_tiny_lora(path: Path, *, rank: int = 4, seed: int = 1, prefix: str = "pipe.dit.",
                    wrapper: str | None = "model_state_dict", adapter: str | None = "default") -> Path:
    """A CLEAR-layout LoRA for the tiny DiT (.pt with a state-dict wrapper, or .safetensors)."""
    import torch

    factors = lora_state_dict(TINY_DIT["num_layers"], TINY_DIT["dim"], TINY_DIT["ffn_dim"], rank, seed=seed,
                              prefix=prefix, adapter=adapter)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(factors, str(path))
    else:
        torch.save({wrapper: factors, "epoch": 3} if wrapper else factors, path)
    return path


def write_tiny_clear_model(dest: Path, *, seed: int = 0, lora_rank: int = 4) -> TinyClearModel:
    """A complete tiny model dir + CLEAR LoRA under ``dest`` (for the end-to-end tests:
    ``--backend clear --model-dir <model_dir> --lora <lora_path>``)."""
    dest = Path(dest)
    model_dir = write_tiny_model_dir(dest / "model", seed=seed)
    lora_path = write_tiny_lora(dest / "clear_lora.pt", rank=lora_rank, seed=seed + 10)
    return TinyClearModel(model_dir=model_dir, lora_path=lora_path, lora_rank=lora_rank)


class CodePayload:
    """Pickled into a checkpoint: unpickling it would create ``marker``, proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clear_ray.testing.tiny_wan",
                                     description="Write a tiny random Wan2.1-Fun-Control model dir (real file layout).")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--lora", type=Path, default=None, help="also write a random CLEAR-layout LoRA here")
    parser.add_argument("--lora-rank", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model_dir = write_tiny_model_dir(args.model_dir, seed=args.seed)
    print(model_dir)
    if args.lora is not None:
        print(write_tiny_lora(args.lora, rank=args.lora_rank, seed=args.seed + 10))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
