"""The `clear-ray` command line: one subcommand per job.

Each subcommand lives in ``clear_ray/commands/<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``. Those modules import only the
standard library and our config at module level; the heavy work is imported inside
``run`` so `clear-ray --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from clear_ray import __version__
from clear_ray.commands.errors import CommandError
from clear_ray.config import ConfigError

# (subcommand, module under clear_ray.commands, one-line help)
SUBCOMMANDS = [
    ("remove", "remove", "remove burned-in subtitles from every video under SRC into DST"),
    ("bench", "bench", "build the evaluation set and score a backend on it"),
    ("demo", "demo", "build a subtitled clip from bundled footage, clean it, write a report"),
    ("make-pairs", "make_pairs", "burn multilingual subtitles into clean videos (training pairs)"),
    ("train-stage1", "train_stage1", "train the Stage I occlusion prior (Ray Train)"),
    ("train-stage2", "train_stage2", "train the Stage II LoRA + occlusion head (Ray Train)"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clear-ray",
        description="Distributed, mask-free removal of hard-burned subtitles (CLEAR on Ray).",
    )
    parser.add_argument("--version", action="version", version=f"clear-ray {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in SUBCOMMANDS:
        module = importlib.import_module(f"clear_ray.commands.{module_name}")
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except ConfigError as error:
        for problem in error.problems:
            print(f"clear-ray {args.command}: config error: {problem}", file=sys.stderr)
        return 2
    except CommandError as error:
        print(f"clear-ray {args.command}: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error of ours.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"clear-ray {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
