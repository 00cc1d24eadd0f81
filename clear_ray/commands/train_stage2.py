"""Placeholder for a subcommand whose implementation has not landed yet."""

from __future__ import annotations

import argparse

from clear_ray.commands.errors import NotAvailableYet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    raise NotAvailableYet("`train-stage2` (Stage II LoRA + occlusion head)")
