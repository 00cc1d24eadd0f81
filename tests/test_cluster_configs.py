"""Every shipped cluster/job config loads, matches our pins, and runs a command our CLI accepts."""

import shlex
from pathlib import Path

import pytest
import yaml

from clear_ray.cli import build_parser
from clear_ray.commands.remove import job_config

REPO = Path(__file__).resolve().parents[1]
RAY_VERSION = "2.60.0"


def _entrypoint_config(entrypoint: str):
    """Parse a `python .../jobs/remove_subtitles.py ARGS` entrypoint with the real CLI parser."""
    words = shlex.split(entrypoint)
    assert words[0] == "python" and words[1].endswith("jobs/remove_subtitles.py")
    args = build_parser().parse_args(["remove", *words[2:]])
    return job_config(args)


def test_kuberay_rayjob_and_raycronjob():
    rayjob = yaml.safe_load((REPO / "cluster/kuberay/rayjob.yaml").read_text())
    cron = yaml.safe_load((REPO / "cluster/kuberay/raycronjob.yaml").read_text())
    cluster = yaml.safe_load((REPO / "cluster/kuberay/raycluster.yaml").read_text())
    assert (rayjob["apiVersion"], rayjob["kind"]) == ("ray.io/v1", "RayJob")
    assert (cron["apiVersion"], cron["kind"]) == ("ray.io/v1", "RayCronJob")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert rayjob["spec"]["rayClusterSpec"]["rayVersion"] == RAY_VERSION == cluster["spec"]["rayVersion"]
    # The cron job runs on the long-lived cluster, selected by its name.
    assert cron["spec"]["jobTemplate"]["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    assert len(cron["spec"]["schedule"].split()) == 5
    for entrypoint in (rayjob["spec"]["entrypoint"], cron["spec"]["jobTemplate"]["entrypoint"]):
        config = _entrypoint_config(entrypoint)
        assert config.remover.resolved_backend() == "clear"
        assert config.src.startswith("s3://") and config.dst.startswith("s3://")
    for spec in (rayjob["spec"]["runtimeEnvYAML"], cron["spec"]["jobTemplate"]["runtimeEnvYAML"]):
        assert isinstance(yaml.safe_load(spec)["env_vars"], dict)
    gpu_group = next(g for g in cluster["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu")
    limits = gpu_group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"


def test_cluster_launcher_config_and_image_pin_the_ray_version():
    launcher = yaml.safe_load((REPO / "cluster/ray-cluster-aws.yaml").read_text())
    assert launcher["head_node_type"] in launcher["available_node_types"]
    assert RAY_VERSION in launcher["docker"]["image"]
    assert any("pip install" in c and "clear_ray" in c for c in launcher["setup_commands"])
    assert f"rayproject/ray:{RAY_VERSION}" in (REPO / "cluster/Dockerfile").read_text()


def test_runtime_env_keeps_the_upload_small():
    runtime_env = yaml.safe_load((REPO / "jobs/runtime_env.yaml").read_text())
    assert {".venv/", ".git/"} <= set(runtime_env["excludes"])


@pytest.mark.parametrize("path", sorted(p.relative_to(REPO) for p in (REPO / "cluster").rglob("*.yaml")))
def test_every_cluster_yaml_is_tested_here(path):
    # A new config file must get a test above; this list names the ones that have one.
    assert str(path) in {"cluster/kuberay/rayjob.yaml", "cluster/kuberay/raycronjob.yaml",
                         "cluster/kuberay/raycluster.yaml", "cluster/ray-cluster-aws.yaml",
                         "cluster/kuberay/rayjob-stage1.yaml",  # tests/training/test_stage1_cli.py
                         "cluster/kuberay/rayjob-stage2.yaml"}  # tests/training/stage2/test_cli.py
