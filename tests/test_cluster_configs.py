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


def _load(name: str) -> dict:
    return yaml.safe_load((REPO / "cluster" / name).read_text())


def _pod_specs(ray_cluster_spec: dict) -> dict[str, dict]:
    """group name ("head" for the head) -> pod spec, of a RayCluster spec."""
    pods = {"head": ray_cluster_spec["headGroupSpec"]["template"]["spec"]}
    for group in ray_cluster_spec["workerGroupSpecs"]:
        pods[group["groupName"]] = group["template"]["spec"]
    return pods


def _has_gpu(pod: dict) -> bool:
    return any("nvidia.com/gpu" in c.get("resources", {}).get("limits", {}) for c in pod["containers"])


def _mounted(pod: dict, path: str) -> bool:
    """``path`` is inside a volume mounted in every container of ``pod``, backed by a volume
    the pod declares."""
    volumes = {v["name"] for v in pod.get("volumes", [])}
    return all(any(path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")
                   for m in c.get("volumeMounts", []) if m["name"] in volumes)
               for c in pod["containers"])


def _files_read(config) -> list[str]:
    """Local files the driver and the remover actors read for this job's settings."""
    paths = [config.remover.clear.model_dir, config.remover.clear.lora]
    return [str(p) for p in paths if p is not None and not str(p).startswith("s3://")]


def _assert_credentials_from_secret(pod: dict, where: str) -> None:
    for container in pod["containers"]:
        from_secret = any("secretRef" in source for source in container.get("envFrom", [])) or any(
            "secretKeyRef" in var.get("valueFrom", {}) and var["name"].startswith("AWS_")
            for var in container.get("env", []))
        assert from_secret, f"{where}: S3 credentials must come from a Secret"
        for var in container.get("env", []):
            assert not ("value" in var and any(word in var["name"] for word in ("SECRET", "KEY", "TOKEN"))), \
                f"{where}: {var['name']} is written into the manifest"


def _assert_runs_as_shipped(entrypoint: str, pods: dict[str, dict], where: str) -> None:
    config = _entrypoint_config(entrypoint)
    assert config.remover.resolved_backend() == "clear"
    assert config.src.startswith("s3://") and config.dst.startswith("s3://")
    # The driver (on the head) fingerprints the model; GPU actors load it.
    readers = ["head"] + [name for name, pod in pods.items() if _has_gpu(pod)]
    assert len(readers) >= 2, f"{where}: no GPU worker group"
    for path in _files_read(config):
        for reader in readers:
            assert _mounted(pods[reader], path), f"{where}: {path} is read in {reader} but not mounted there"
    for name, pod in pods.items():
        _assert_credentials_from_secret(pod, f"{where} {name}")


def _assert_gpu_groups_autoscale_from_zero(cluster_spec: dict, where: str) -> None:
    assert cluster_spec.get("enableInTreeAutoscaling") is True, where
    for group in cluster_spec["workerGroupSpecs"]:
        if _has_gpu(group["template"]["spec"]):
            assert group["minReplicas"] == 0 and group.get("replicas", 0) == 0, f"{where}: {group['groupName']}"
            assert group["maxReplicas"] >= 1


def test_kuberay_raycluster_and_rayjob_run_as_shipped():
    rayjob, cluster = _load("kuberay/rayjob.yaml"), _load("kuberay/raycluster.yaml")
    assert (rayjob["apiVersion"], rayjob["kind"]) == ("ray.io/v1", "RayJob")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert rayjob["spec"]["rayClusterSpec"]["rayVersion"] == RAY_VERSION == cluster["spec"]["rayVersion"]
    _assert_runs_as_shipped(rayjob["spec"]["entrypoint"], _pod_specs(rayjob["spec"]["rayClusterSpec"]), "rayjob")
    _assert_gpu_groups_autoscale_from_zero(rayjob["spec"]["rayClusterSpec"], "rayjob")
    _assert_gpu_groups_autoscale_from_zero(cluster["spec"], "raycluster")
    assert isinstance(yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])["env_vars"], dict)
    gpu_group = next(g for g in cluster["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu")
    assert gpu_group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_nightly_cronjob_forbids_overlap_and_submits_a_blocking_job():
    cron, cluster = _load("kuberay/cronjob.yaml"), _load("kuberay/raycluster.yaml")
    assert (cron["apiVersion"], cron["kind"]) == ("batch/v1", "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert len(cron["spec"]["schedule"].split()) == 5
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    [container] = pod["containers"]
    words = container["command"]
    assert words[:3] == ["ray", "job", "submit"] and "--no-wait" not in words  # blocks until the job ends
    address = words[words.index("--address") + 1]
    assert address == f"http://{cluster['metadata']['name']}-head-svc:8265"
    entrypoint = " ".join(shlex.quote(w) for w in words[words.index("--") + 1:])
    # The entrypoint runs on the RayCluster's pods, which must mount what it reads.
    _assert_runs_as_shipped(entrypoint, _pod_specs(cluster["spec"]), "cronjob -> raycluster")
    for var in container.get("env", []):
        assert "value" not in var, f"cronjob: {var['name']} must come from a Secret"


def test_raycronjob_is_kept_as_the_documented_alpha_option():
    text = (REPO / "cluster/kuberay/raycronjob.yaml").read_text()
    cron, cluster = yaml.safe_load(text), _load("kuberay/raycluster.yaml")
    assert (cron["apiVersion"], cron["kind"]) == ("ray.io/v1", "RayCronJob")
    assert "--feature-gates=RayCronJob=true" in text and "1.6" in text and "alpha" in text.lower()
    assert cron["spec"]["jobTemplate"]["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    assert len(cron["spec"]["schedule"].split()) == 5
    _assert_runs_as_shipped(cron["spec"]["jobTemplate"]["entrypoint"], _pod_specs(cluster["spec"]), "raycronjob")
    assert isinstance(yaml.safe_load(cron["spec"]["jobTemplate"]["runtimeEnvYAML"])["env_vars"], dict)


def test_launcher_nodes_all_have_the_models_and_no_keys():
    launcher = _load("ray-cluster-aws.yaml")
    text = (REPO / "cluster/ray-cluster-aws.yaml").read_text()
    # The launcher's documented submit command uses the same model paths as the KubeRay job.
    config = _entrypoint_config(_load("kuberay/rayjob.yaml")["spec"]["entrypoint"])
    assert all(path in text for path in _files_read(config))
    # docker run_options and initialization_commands apply to every node type, head included.
    mounts = [option.split()[1].split(":") for option in launcher["docker"]["run_options"] if option.startswith("-v ")]
    for path in _files_read(config):
        hosts = [host for host, inside, *_ in mounts if path.startswith(inside.rstrip("/") + "/")]
        assert hosts, f"{path} is not mounted into the containers"
        assert any("sync" in command and f" {hosts[0]}" in command for command in launcher["initialization_commands"])
    for name, node_type in launcher["available_node_types"].items():
        assert "IamInstanceProfile" in node_type["node_config"], f"{name}: S3 access from an instance profile"
    assert "aws_secret_access_key" not in text.lower()


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
    assert str(path) in {"cluster/kuberay/rayjob.yaml", "cluster/kuberay/raycronjob.yaml", "cluster/kuberay/cronjob.yaml",
                         "cluster/kuberay/raycluster.yaml", "cluster/ray-cluster-aws.yaml",
                         "cluster/kuberay/rayjob-stage1.yaml",  # tests/training/test_stage1_cli.py
                         "cluster/kuberay/rayjob-stage2.yaml"}  # tests/training/stage2/test_cli.py
