"""`clear-ray train-stage2 --pairs URI --model-dir DIR --output URI`: Stage II LoRA + occlusion head.

Running again with the same output and run name resumes from the run's latest checkpoint.
At the end OUTPUT/export/ holds clear_lora.safetensors / clear_lora.pt (for
`clear-ray remove --backend clear --lora`) and occlusion_head.safetensors.
"""

from __future__ import annotations

import argparse
import sys

# flag -> (dotted config field, argparse keyword arguments); unset flags never override YAML/env.
FLAGS: dict[str, tuple[str, dict]] = {
    "--pairs": ("pairs", {"metavar": "URI", "help": "pairs dataset from `clear-ray make-pairs` (dir or s3://)"}),
    "--model-dir": ("model_dir", {"metavar": "DIR", "help": "Wan2.1-Fun-V1.1-1.3B-Control files"}),
    "--output": ("output", {"metavar": "URI", "help": "checkpoints (runs/NAME) and exports (export/), dir or s3://"}),
    "--stage1": ("stage1", {"metavar": "URI", "help": "Stage I prior export; sets the prior to stage1"}),
    "--workers": ("run.workers", {"type": int, "metavar": "N", "help": "training workers (1)"}),
    "--strategy": ("strategy", {"choices": ["ddp", "fsdp"], "help": "ddp (whole model per worker) or fsdp (sharded)"}),
    "--gpus-per-worker": ("run.gpus_per_worker", {"type": float, "metavar": "G", "help": "0 = CPU (0)"}),
    "--cpus-per-worker": ("run.cpus_per_worker", {"type": float, "metavar": "C", "help": "CPUs per worker (1)"}),
    "--max-steps": ("max_steps", {"type": int, "metavar": "S", "help": "optimizer steps (1000)"}),
    "--batch-size": ("batch_size", {"type": int, "metavar": "B", "help": "global batch in windows (8)"}),
    "--name": ("run.name", {"metavar": "NAME", "help": "run name; the same name resumes (stage2)"}),
    "--address": ("run.address", {"metavar": "ADDR", "help": "connect to an existing Ray cluster"}),
    "--latent-cache": ("latent_cache", {"metavar": "URI", "help": "latents from `encode_latents` (else on the fly)"}),
    "--s3-endpoint-url": ("run.storage.endpoint_url", {"metavar": "URL"}),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML file with any Stage2Config setting")
    parser.add_argument("--print-config", action="store_true", help="print the validated settings and exit")
    for flag, (dotted, kwargs) in FLAGS.items():
        parser.add_argument(flag, dest=_dest(dotted), default=None, **kwargs)


def job_config(args: argparse.Namespace):
    from clear_ray.config import load_config
    from clear_ray.training.stage2.config import Stage2Config

    overrides = {dotted: getattr(args, _dest(dotted)) for dotted, _ in FLAGS.values()}
    if args.cfg__stage1 is not None:
        overrides["objective.prior"] = "stage1"
    return load_config(Stage2Config, yaml_path=args.config, overrides=overrides)


def run(args: argparse.Namespace) -> int:
    config = job_config(args)
    if args.print_config:
        import yaml

        yaml.safe_dump(config.model_dump(mode="json"), sys.stdout, sort_keys=False)
        return 0
    from clear_ray.commands.errors import CommandError
    from clear_ray.models.files import ClearModelError
    from clear_ray.training.stage2.recipe import train_stage2

    try:
        result = train_stage2(config)
    except (ClearModelError, FileNotFoundError, ValueError) as error:
        raise CommandError(str(error).splitlines()[0], exit_code=2) from None
    last = result.history[-1] if result.history else {}
    print(f"clear-ray train-stage2: step {result.step}, loss {last.get('loss', float('nan')):.4f}; "
          f"LoRA {result.exports['lora.safetensors']}, head {result.exports.get('head', '-')}", flush=True)
    return 0


def _dest(dotted: str) -> str:
    return "cfg__" + dotted.replace(".", "__")
