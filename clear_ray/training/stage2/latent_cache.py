"""The latent cache: every pair's clean and subtitled windows through the Wan VAE once, and
the constant prompt through T5 once, so training reads latents instead of re-encoding them.

    CACHE/cache.json                  frames, width, height, tiled_vae, prompt (what the latents mean)
    CACHE/context.safetensors         the prompt's T5 context
    CACHE/latents/<pair_id>.safetensors  clean_latents, control_latents (16, T', H/8, W/8)
                                      [, prior (1, T', H/8, W/8) from the exact alpha]

A Ray Data job: the pairs index rows go through an actor pool (``num_gpus`` per actor; the
actor falls back to CPU where CUDA is absent), each actor loading the VAE and T5 once. A shard
that exists is skipped, so a re-run finishes an interrupted cache. Each file is written
atomically. Encoding is ``clear_ray.models.denoise.encode_video``: the same call the
on-the-fly path and inference make.
"""

from __future__ import annotations

import json
from typing import Any

from clear_ray import storage as uris
from clear_ray.training.stage2.config import Stage2Config

META_FILE, CONTEXT_FILE = "cache.json", "context.safetensors"


def cache_description(config: Stage2Config) -> dict[str, Any]:
    return {"frames": config.frames, "width": config.width, "height": config.height,
            "tiled_vae": config.tiled_vae, "prompt": config.prompt}


def latents_uri(cache: str, pair_id: str) -> str:
    return uris.join(cache, "latents", f"{pair_id}.safetensors")


def check_cache(config: Stage2Config, storage_options: dict | None = None) -> None:
    """The cache was made for these windows and this prompt (a one-line error otherwise)."""
    cache = config.latent_cache
    try:
        stored = json.loads(uris.read_bytes(uris.join(cache, META_FILE), storage_options))
    except FileNotFoundError:
        raise ValueError(f"no latent cache at {cache} (run encode_latents first)") from None
    wanted = cache_description(config)
    different = sorted(key for key in wanted if stored.get(key) != wanted[key])
    if different:
        raise ValueError(f"latent cache {cache} was made with other {', '.join(different)} "
                         f"({', '.join(f'{k}={stored.get(k)!r}' for k in different)})")


def read_latents(cache: str, pair_id: str, storage_options: dict | None = None) -> dict:
    from safetensors.torch import load

    return load(uris.read_bytes(latents_uri(cache, pair_id), storage_options))


def read_context(cache: str, storage_options: dict | None = None):
    from safetensors.torch import load

    return load(uris.read_bytes(uris.join(cache, CONTEXT_FILE), storage_options))["context"]


class LatentEncoder:
    """Ray Data actor: loads the VAE and T5 once, writes one shard per pair."""

    def __init__(self, config_json: dict, storage_options: dict | None):
        import torch

        from clear_ray.models.files import locate_model_files
        from clear_ray.models.wan import assemble_pipeline, encode_prompt, load_component, load_tokenizer

        self.config = Stage2Config.model_validate(config_json)
        self.storage_options = storage_options
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" and self.config.bf16 else torch.float32
        files = locate_model_files(self.config.model_dir)
        # The DiT is not needed; the pipeline's units only want its in_dim, so build none.
        self.pipe = assemble_pipeline(device, dtype, vae=load_component(files, "vae", device, dtype),
                                      text_encoder=load_component(files, "text_encoder", device, dtype),
                                      tokenizer=load_tokenizer(files))
        context_uri = uris.join(self.config.latent_cache, CONTEXT_FILE)
        if not uris.exists(context_uri, storage_options):
            from safetensors.torch import save

            context = encode_prompt(self.pipe, self.config.prompt).float().cpu().contiguous()
            uris.write_bytes_atomic(context_uri, save({"context": context}), storage_options)
        self.pipe.text_encoder = None

    def __call__(self, batch: dict) -> dict:
        import numpy as np
        import torch
        from safetensors.torch import save

        from clear_ray.models.denoise import encode_video
        from clear_ray.training.stage2.samples import load_window, pool_to_latent_grid

        config, written = self.config, []
        for row_json in batch["row"]:
            row = json.loads(row_json)
            uri = latents_uri(config.latent_cache, row["pair_id"])
            if uris.exists(uri, self.storage_options):
                written.append(False)
                continue
            clean, subtitled, alpha = load_window(row, config.frames, config.width, config.height, self.storage_options)
            with torch.no_grad():
                tensors = {"clean_latents": encode_video(self.pipe, clean, tiled=config.tiled_vae)[0],
                           "control_latents": encode_video(self.pipe, subtitled, tiled=config.tiled_vae)[0]}
            tensors = {name: tensor.float().cpu().contiguous() for name, tensor in tensors.items()}
            if alpha is not None:
                tensors["prior"] = torch.from_numpy(pool_to_latent_grid(alpha))[None].contiguous()
            uris.write_bytes_atomic(uri, save(tensors), self.storage_options)
            written.append(True)
        return {"written": np.array(written)}


def encode_latents(config: Stage2Config, *, num_gpus: float = 1.0, actors: int = 1) -> dict[str, int]:
    """Fill ``config.latent_cache`` for every pair of ``config.split``; returns counts."""
    import ray

    from clear_ray.models.files import locate_model_files
    from clear_ray.pairs import read_index
    from clear_ray.training.storage import fsspec_options

    if config.latent_cache is None:
        raise ValueError("set latent_cache (where the latents go)")
    locate_model_files(config.model_dir)
    options = fsspec_options(config.run.storage)
    rows = [row for row in read_index(config.pairs, storage_options=options) if row["split"] == config.split]
    if not rows:
        raise ValueError(f"{config.pairs} has no {config.split!r} pairs")
    uris.write_bytes_atomic(uris.join(config.latent_cache, META_FILE),
                            json.dumps(cache_description(config), indent=2).encode(), options)
    items = [{"row": json.dumps(row, default=str)} for row in rows]
    written = (ray.data.from_items(items, override_num_blocks=min(len(items), 4 * actors))
               .map_batches(LatentEncoder, batch_size=1, num_gpus=num_gpus, num_cpus=1,
                            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
                            fn_constructor_kwargs={"config_json": config.model_dump(mode="json"),
                                                   "storage_options": options})
               .take_all())
    made = sum(bool(item["written"]) for item in written)
    return {"pairs": len(rows), "written": made, "skipped": len(rows) - made}
