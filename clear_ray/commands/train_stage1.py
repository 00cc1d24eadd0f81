"""`clear-ray train-stage1 --pairs URI --output URI`: train the Stage I occlusion prior."""

from __future__ import annotations

import argparse
import sys

import yaml

from clear_ray.commands.errors import CommandError
from clear_ray.config import load_config
from clear_ray.training.stage1.config import Stage1TrainConfig

# flag -> (dotted config field, argparse keyword arguments); unset flags stay None so they
# never override the YAML file or the environment.
FLAGS: dict[str, tuple[str, dict]] = {
    "--pairs": ("pairs", {"metavar": "URI", "help": "pairs dataset from make-pairs (dir or s3://)"}),
    "--output": ("output", {"metavar": "URI", "help": "checkpoints (runs/NAME) and stage1.safetensors go here"}),
    "--name": ("run.name", {"help": "run name; the same name resumes its latest checkpoint (stage1)"}),
    "--workers": ("run.workers", {"type": int, "metavar": "N", "help": "DDP workers (1)"}),
    "--gpus-per-worker": ("run.gpus_per_worker", {"type": float, "metavar": "G", "help": "0 = CPU (0)"}),
    "--cpus-per-worker": ("run.cpus_per_worker", {"type": float, "metavar": "C", "help": "(1)"}),
    "--max-steps": ("max_steps", {"type": int, "metavar": "S", "help": "optimizer steps (20000)"}),
    "--batch-size": ("batch_size", {"type": int, "metavar": "B", "help": "global batch in frames (16)"}),
    "--address": ("run.address", {"help": "connect to an existing Ray cluster instead of starting one"}),
    "--s3-endpoint-url": ("run.storage.endpoint_url", {"metavar": "URL"}),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML file with any setting (model, loss, data, optim, run)")
    parser.add_argument("--print-config", action="store_true", help="print the validated settings and exit")
    for flag, (dotted, kwargs) in FLAGS.items():
        parser.add_argument(flag, dest=_dest(dotted), default=None, **kwargs)


def job_config(args: argparse.Namespace) -> Stage1TrainConfig:
    overrides = {dotted: getattr(args, _dest(dotted)) for dotted, _ in FLAGS.values()}
    return load_config(Stage1TrainConfig, yaml_path=args.config, overrides=overrides)


def run(args: argparse.Namespace) -> int:
    config = job_config(args)
    if args.print_config:
        yaml.safe_dump(config.model_dump(mode="json"), sys.stdout, sort_keys=False)
        return 0
    from clear_ray.training.stage1.recipe import train_stage1

    try:
        result = train_stage1(config)
    except (FileNotFoundError, ValueError) as error:
        raise CommandError(str(error).splitlines()[0], exit_code=2) from None
    metrics = result.metrics
    print(f"stage1: step {result.step}, exported {result.export_uri}")
    if "dev_iou" in metrics:
        print(f"stage1: dev mask IoU {metrics['dev_iou']:.3f} F1 {metrics['dev_f1']:.3f} "
              f"(pseudo-label rule: IoU {metrics['dev_pseudo_iou']:.3f} F1 {metrics['dev_pseudo_f1']:.3f})")
    return 0


def _dest(dotted: str) -> str:
    return "cfg__" + dotted.replace(".", "__")
