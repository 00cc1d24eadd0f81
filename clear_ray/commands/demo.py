"""`clear-ray demo`: build a subtitled clip from bundled footage, clean it, write a report."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="clear-ray-demo", metavar="DIR", help="where to write everything (clear-ray-demo)")
    parser.add_argument("--backend", default="auto", choices=["auto", "clear", "lite", "identity"],
                        help="auto = the embedded lite remover unless a CLEAR model is configured")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of the demo clip (6)")
    parser.add_argument("--address", help="run on an existing Ray cluster instead of a local one")


def run(args: argparse.Namespace) -> int:
    from clear_ray.commands.errors import CommandError
    from clear_ray.demo import run_demo

    if not 1.0 <= args.seconds <= 60.0:
        raise CommandError(f"--seconds must be in [1, 60], got {args.seconds}", exit_code=2)
    try:
        run_demo(Path(args.out), backend=args.backend, seconds=args.seconds, address=args.address)
    except (RuntimeError, FileNotFoundError) as error:
        raise CommandError(str(error).splitlines()[0]) from None
    return 0
