"""`clear-ray make-pairs` argument handling: one line per bad setting, no traceback."""

from __future__ import annotations

import subprocess

import yaml


def _run(*args):
    return subprocess.run(["clear-ray", "make-pairs", *args], capture_output=True, text=True, timeout=120)


def test_bad_settings_are_one_line_each():
    result = _run("in", "out", "--window", "80", "--languages", "zh,xx")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any("windows.frames" in line and "4n+1" in line for line in lines)
    assert any("synthesis.languages" in line and "xx" in line for line in lines)


def test_print_config_layers_flags_over_defaults():
    result = _run("in", "s3://bucket/pairs", "--window", "17", "--windows-per-video", "3", "--seed", "5",
                  "--print-config")
    assert result.returncode == 0, result.stderr
    settings = yaml.safe_load(result.stdout)
    assert settings["windows"] == {"frames": 17, "per_video": 3, "stride": None}
    assert settings["seed"] == 5 and settings["synthesis"]["split"] == "train"
    assert len(settings["synthesis"]["languages"]) == 8


def test_a_missing_src_is_one_line(tmp_path):
    result = _run(str(tmp_path / "nope"), str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr
