"""`clear-ray make-pairs SRC DST`: (clean, subtitled, alpha) training pairs from clean videos."""

from __future__ import annotations

import argparse
import sys

from clear_ray.commands.errors import CommandError

# flag -> (dotted config field, argparse keyword arguments); unset flags never override YAML/env.
FLAGS: dict[str, tuple[str, dict]] = {
    "--seed": ("seed", {"type": int, "metavar": "N", "help": "same seed and inputs, same pairs (0)"}),
    "--window": ("windows.frames", {"type": int, "metavar": "N", "help": "frames per window, 4n+1 (81)"}),
    "--windows-per-video": ("windows.per_video", {"type": int, "metavar": "K", "help": "windows per video (4)"}),
    "--stride": ("windows.stride", {"type": int, "metavar": "N", "help": "frames between window starts (spread evenly)"}),
    "--languages": ("synthesis.languages", {"type": lambda s: tuple(x for x in s.split(",") if x),
                                            "metavar": "zh,en,...", "help": "languages to burn in (all eight)"}),
    "--text-free-fraction": ("synthesis.text_free_fraction", {"type": float, "metavar": "F", "help": "windows left clean (0.1)"}),
    "--split": ("synthesis.split", {"choices": ["train", "dev", "test"], "help": "synth split of fonts/texts/styles (train)"}),
    "--dev-fraction": ("synthesis.dev_fraction", {"type": float, "metavar": "F", "help": "share of videos made dev pairs (0)"}),
    "--from-pairs": ("from_pairs", {"action": "store_const", "const": True,
                                    "help": "SRC is CLEAR's clean/ + subtitled/ layout: index it with pseudo-labels"}),
    "--export-clear-layout": ("export_clear_layout", {"metavar": "DIR", "help": "also write CLEAR's layout here"}),
    "--force": ("force", {"action": "store_const", "const": True, "help": "rewrite shards that exist"}),
    "--address": ("ray.address", {"metavar": "ADDR", "help": "connect to an existing Ray cluster instead of starting one"}),
    "--max-actors": ("ray.max_actors", {"type": int, "metavar": "N", "help": "burn-in workers (as many as fit)"}),
    "--quiet": ("quiet", {"action": "store_const", "const": True, "help": "only errors and the summary"}),
    "--s3-endpoint-url": ("storage.endpoint_url", {"metavar": "URL"}),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", help="clean videos: file, directory, glob or s3://bucket/prefix")
    parser.add_argument("dst", metavar="DST", help="pairs dataset directory or s3://bucket/prefix")
    parser.add_argument("--config", metavar="FILE", help="YAML file with any of the settings below")
    parser.add_argument("--print-config", action="store_true", help="print the validated settings and exit")
    for flag, (dotted, kwargs) in FLAGS.items():
        parser.add_argument(flag, dest=_dest(dotted), default=None, **kwargs)


def job_config(args: argparse.Namespace):
    from clear_ray.config import load_config
    from clear_ray.pairs.config import MakePairsConfig

    overrides = {"src": args.src, "dst": args.dst}
    overrides.update({dotted: getattr(args, _dest(dotted)) for dotted, _ in FLAGS.values()})
    return load_config(MakePairsConfig, yaml_path=args.config, overrides=overrides)


def run(args: argparse.Namespace) -> int:
    config = job_config(args)
    if args.print_config:
        import yaml

        yaml.safe_dump(config.model_dump(mode="json"), sys.stdout, sort_keys=False)
        return 0
    from clear_ray.catalog import CatalogError
    from clear_ray.pairs.job import run_make_pairs

    try:
        summary = run_make_pairs(config)
    except CatalogError as error:
        raise CommandError(str(error).splitlines()[0], exit_code=2) from None
    return summary.exit_code


def _dest(dotted: str) -> str:
    return "cfg__" + dotted.replace(".", "__")
