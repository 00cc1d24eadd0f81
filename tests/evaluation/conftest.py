"""A tiny benchmark set (2 x 3 clips of 1-2 s at 160x120), built once with the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TINY_ARGS = ["--clips", "3", "--size", "160x120", "--seconds", "1-2"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clear_ray", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="session")
def bench_cli():
    """Run `python -m clear_ray ARGS...` (the real CLI) and return the completed process."""
    return run_cli


@pytest.fixture(scope="session")
def tiny_args() -> list[str]:
    return list(TINY_ARGS)


@pytest.fixture(scope="session")
def tiny_bench(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("bench") / "set"
    result = run_cli("bench", "make", str(directory), "--seed", "7", *TINY_ARGS)
    assert result.returncode == 0, result.stderr
    return directory
