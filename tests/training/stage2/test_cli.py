"""`clear-ray train-stage2`: settings and bad input end in one line each, before Ray starts."""

from __future__ import annotations

import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clear_ray", "train-stage2", *args], capture_output=True,
                          text=True, timeout=120)


def test_missing_settings_are_one_line_each():
    result = _run()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and all("required" in line for line in lines)


def test_flags_layer_over_the_yaml_and_stage1_selects_the_prior(tmp_path):
    (tmp_path / "c.yaml").write_text("max_steps: 7\nlora: {rank: 8, alpha: 16}\nrun: {workers: 2}\nbatch_size: 4\n")
    result = _run("--pairs", "p", "--model-dir", str(tmp_path), "--output", "o", "--config", str(tmp_path / "c.yaml"),
                  "--max-steps", "9", "--stage1", "s3://b/prior", "--print-config")
    assert result.returncode == 0, result.stderr
    assert "max_steps: 9" in result.stdout and "rank: 8" in result.stdout and "prior: stage1" in result.stdout


def test_bad_model_dir_and_pairs_are_one_line(tmp_path, stage2_model_dir):
    result = _run("--pairs", str(tmp_path), "--model-dir", str(tmp_path / "none"), "--output", str(tmp_path / "o"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "not a directory" in result.stderr
    result = _run("--pairs", str(tmp_path), "--model-dir", str(tmp_path), "--output", str(tmp_path / "o"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "lacks" in result.stderr
    result = _run("--pairs", str(tmp_path / "none"), "--model-dir", str(stage2_model_dir), "--output", str(tmp_path / "o"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "index" in result.stderr


def test_kuberay_stage2_rayjob_runs_a_command_our_cli_accepts(monkeypatch):
    import shlex
    from pathlib import Path

    import yaml

    from clear_ray.cli import build_parser
    from clear_ray.commands.train_stage2 import job_config

    repo = Path(__file__).resolve().parents[3]
    rayjob = yaml.safe_load((repo / "cluster/kuberay/rayjob-stage2.yaml").read_text())
    assert (rayjob["apiVersion"], rayjob["kind"]) == ("ray.io/v1", "RayJob")
    words = shlex.split(rayjob["spec"]["entrypoint"])
    assert words[0] == "python" and words[1].endswith("jobs/train_stage2.py") and (repo / "jobs/train_stage2.py").is_file()
    for name in [name for name in __import__("os").environ if name.startswith("CLEAR_RAY_")]:
        monkeypatch.delenv(name)
    for name, value in yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])["env_vars"].items():
        monkeypatch.setenv(name, str(value))
    config = job_config(build_parser().parse_args(["train-stage2", *words[2:]]))
    assert config.pairs.startswith("s3://") and config.output.startswith("s3://")
    assert (config.frames, config.height, config.width) == (81, 480, 832) and config.objective.prior == "stage1"
    gpus = sum(g["replicas"] * int(g["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
               for g in rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"])
    assert config.run.workers == gpus and config.run.gpus_per_worker == 1 and config.accumulation == 1


def test_strategy_flag_selects_fsdp_and_a_bad_one_is_one_line(tmp_path):
    result = _run("--pairs", "p", "--model-dir", str(tmp_path), "--output", "o", "--print-config")
    assert result.returncode == 0 and "strategy: ddp" in result.stdout
    result = _run("--pairs", "p", "--model-dir", str(tmp_path), "--output", "o", "--strategy", "fsdp", "--print-config")
    assert result.returncode == 0 and "strategy: fsdp" in result.stdout
    (tmp_path / "c.yaml").write_text("strategy: zero3\n")
    result = _run("--pairs", "p", "--model-dir", str(tmp_path), "--output", "o", "--config", str(tmp_path / "c.yaml"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "strategy" in result.stderr
