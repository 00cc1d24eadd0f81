"""The installed package and its command line."""

import subprocess
import sys

import pytest

import clear_ray


def _run(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


def test_package_import_stays_light():
    # The driver and the CLI must not pay for torch/diffsynth/ray at import time.
    code = ("import clear_ray, clear_ray.cli, clear_ray.config, clear_ray.removers, sys; "
            "heavy = [m for m in ('torch', 'ray', 'diffsynth', 'cv2', 'av') if m in sys.modules]; "
            "assert not heavy, heavy")
    result = _run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr


def test_version_and_help():
    result = _run("clear-ray", "--version")
    assert result.returncode == 0 and clear_ray.__version__ in result.stdout
    result = _run(sys.executable, "-m", "clear_ray", "--version")
    assert result.returncode == 0 and clear_ray.__version__ in result.stdout
    result = _run("clear-ray", "--help")
    assert result.returncode == 0
    for command in ("remove", "bench", "demo"):
        assert command in result.stdout
    result = _run("clear-ray", "remove", "--help")
    for flag in ("--backend", "--config", "--chunk-size", "--chunk-overlap", "--comparison", "--force", "--address"):
        assert flag in result.stdout


def test_bad_flag_value_is_one_line_per_problem_without_traceback():
    result = _run("clear-ray", "remove", "in", "out", "--chunk-size", "80", "--lora-scale", "3")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any("chunking.chunk_size" in line and "4n+1" in line for line in lines)
    assert any("remover.clear.lora_scale" in line and "2" in line for line in lines)
