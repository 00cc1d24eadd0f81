"""`clear-ray train-stage1` settings: flags, YAML, environment, and the shipped RayJob."""

import shlex
from pathlib import Path

import pytest
import yaml

from clear_ray.cli import build_parser
from clear_ray.commands.train_stage1 import job_config
from clear_ray.config import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _config(*argv, env=None, monkeypatch=None):
    args = build_parser().parse_args(["train-stage1", *argv])
    return job_config(args)


def test_flags_layer_over_defaults_and_bad_values_name_the_field(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("CLEAR_RAY_"):
            monkeypatch.delenv(name)
    config = _config("--pairs", "s3://b/pairs", "--output", "s3://b/out", "--workers", "4",
                     "--gpus-per-worker", "1", "--max-steps", "7", "--batch-size", "32")
    assert (config.run.workers, config.run.gpus_per_worker, config.max_steps, config.batch_size) == (4, 1.0, 7, 32)
    # The defaults are the paper's network: ResNet-50 encoders at 480p.
    assert config.model.backbone.layers == (3, 4, 6, 3) and config.model.backbone.block == "bottleneck"
    assert (config.data.height, config.data.width) == (480, 832)
    with pytest.raises(ConfigError) as error:
        _config("--pairs", "p", "--output", "o", "--workers", "3", "--batch-size", "16")
    assert any("multiple of run.workers" in p for p in error.value.problems)
    monkeypatch.setenv("CLEAR_RAY_DATA__HEIGHT", "100")
    with pytest.raises(ConfigError) as error:
        _config("--pairs", "p", "--output", "o")
    assert error.value.problems == ["data.height: must be a multiple of 32, got 100"]


def test_kuberay_stage1_rayjob_runs_a_command_our_cli_accepts(monkeypatch, tmp_path):
    rayjob = yaml.safe_load((REPO / "cluster/kuberay/rayjob-stage1.yaml").read_text())
    assert (rayjob["apiVersion"], rayjob["kind"]) == ("ray.io/v1", "RayJob")
    assert rayjob["spec"]["rayClusterSpec"]["rayVersion"] == "2.60.0"
    words = shlex.split(rayjob["spec"]["entrypoint"])
    assert words[0] == "python" and words[1].endswith("jobs/train_stage1.py")
    assert (REPO / "jobs/train_stage1.py").is_file()
    # The runtime env's variables are settings too (ImageNet weights from the volume).
    weights = tmp_path / "resnet50-imagenet.pth"
    env_vars = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])["env_vars"]
    for name, value in env_vars.items():
        monkeypatch.setenv(name, str(weights) if name.endswith("IMAGENET_WEIGHTS") else value)
    config = _config(*words[2:])
    assert config.pairs.startswith("s3://") and config.output.startswith("s3://")
    assert config.model.backbone.imagenet_weights == weights and config.model.backbone.norm == "frozen_batch"
    gpus = sum(g["replicas"] * int(g["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
               for g in rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"])
    assert config.run.workers == gpus and config.run.gpus_per_worker == 1
