"""Actor pool sizing: from the configuration on clusters that can grow, fitted to a local
cluster the job started, and planning/stitching always keep CPU to run on."""

import pytest

from clear_ray.pipeline.resources import ClusterUnsuitable, plan_resources, settle_resources
from tests.pipeline.helpers import job_config


def _config(backend, **overrides):
    settings = {"remover.backend": backend, "ray.max_actors": None, **overrides}
    if backend == "clear":
        settings["remover.clear.model_dir"] = "/models/wan"
    return job_config("in", "out", **settings)


@pytest.mark.parametrize(("backend", "cluster", "overrides", "expected"), [
    # (actor_gpus, actor_cpus, max_actors, task_cpus) on a local cluster the job started
    ("clear", {"CPU": 32, "GPU": 4}, {}, (1.0, 1.0, 4, 1.0)),
    # A CPU backend gets one actor per core; the actors share the tasks' CPU.
    ("lite", {"CPU": 32, "GPU": 4}, {}, (0.0, 0.9687, 32, 1.0)),  # lite never takes a GPU
    ("lite", {"CPU": 2, "GPU": 1}, {}, (0.0, 0.5, 2, 1.0)),
    ("lite", {"CPU": 6}, {}, (0.0, 0.8333, 6, 1.0)),
    ("identity", {"CPU": 1}, {}, (0.0, 0.5, 1, 0.5)),  # a 1-CPU cluster still plans and stitches
    ("clear", {"CPU": 16, "GPU": 2}, {"ray.num_gpus_per_actor": 0.5}, (0.5, 1.0, 4, 1.0)),
    ("clear", {"CPU": 16, "GPU": 8}, {"ray.max_actors": 3}, (1.0, 1.0, 3, 1.0)),
    ("identity", {"CPU": 2}, {"ray.max_actors": 5}, (0.0, 0.5, 2, 1.0)),  # capped to what fits
    ("identity", {"CPU": 2}, {"ray.max_actors": 1}, (0.0, 1.0, 1, 1.0)),
    # CPUs per actor set by the user: kept, and the tasks keep their CPU.
    ("lite", {"CPU": 2}, {"ray.num_cpus_per_actor": 1}, (0.0, 1.0, 1, 1.0)),
    ("lite", {"CPU": 8}, {"ray.num_cpus_per_actor": 2}, (0.0, 2.0, 3, 1.0)),
])
def test_pool_on_a_fixed_local_cluster(backend, cluster, overrides, expected):
    plan = plan_resources(_config(backend, **overrides), cluster, fixed_size=True)
    assert (plan.actor_gpus, plan.actor_cpus, plan.max_actors, plan.task_cpus) == expected
    # Actors never hold every CPU: plan/stitch/mux tasks can always run.
    assert plan.actor_cpus * plan.max_actors + plan.task_cpus <= cluster["CPU"]


@pytest.mark.parametrize(("backend", "cluster", "overrides", "expected"), [
    # An autoscaling cluster whose head has no GPU (and maybe no CPU): the pool asks for
    # GPU actors as configured; the autoscaler brings the nodes.
    ("clear", {"CPU": 4}, {"ray.max_actors": 16}, (1.0, 1.0, 1, 16, 1.0)),
    ("clear", {"CPU": 0}, {"ray.max_actors": 8, "ray.min_actors": 2}, (1.0, 1.0, 2, 8, 1.0)),  # no 1/0
    ("clear", {}, {"ray.min_actors": 2, "ray.num_cpus_per_actor": 4}, (1.0, 4.0, 2, 2, 1.0)),
    ("clear", {"CPU": 64, "GPU": 8}, {}, (1.0, 1.0, 1, 8, 1.0)),  # unset max: what is there now
    ("identity", {"CPU": 0.5}, {"ray.num_cpus_per_actor": 2}, (0.0, 2.0, 1, 1, 0.25)),
])
def test_pool_on_a_cluster_that_can_grow(backend, cluster, overrides, expected):
    plan = plan_resources(_config(backend, **overrides), cluster, fixed_size=False)
    assert (plan.actor_gpus, plan.actor_cpus, plan.min_actors, plan.max_actors, plan.task_cpus) == expected


def test_a_gpu_backend_on_a_local_cluster_without_gpu_needs_consent(ray_cluster, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    with pytest.raises(ClusterUnsuitable, match="needs a GPU .*--allow-cpu-fallback"):
        settle_resources(_config("clear"), fixed_size=True)
    plan = settle_resources(_config("clear", **{"ray.allow_cpu_fallback": True}), fixed_size=True)
    assert plan.actor_gpus == 0.0 and plan.max_actors == 1


def test_a_gpu_backend_waits_a_bounded_time_for_a_gpu_node(ray_cluster, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    with pytest.raises(ClusterUnsuitable, match="none joined the cluster within 1 s"):
        settle_resources(_config("clear", **{"ray.gpu_wait_s": 1, "ray.shared_filesystem": True}), fixed_size=False)
    # GPU nodes would join: local paths are refused before any waiting.
    with pytest.raises(ClusterUnsuitable, match="local paths"):
        settle_resources(_config("clear", **{"ray.gpu_wait_s": 1000}), fixed_size=False)


def test_local_paths_on_a_multi_node_cluster_are_refused(ray_cluster, monkeypatch):
    import ray

    two_nodes = [{"Alive": True}, {"Alive": True}]
    monkeypatch.setattr(ray, "nodes", lambda: two_nodes)
    with pytest.raises(ClusterUnsuitable, match="SRC and DST are local paths .*--shared-filesystem"):
        settle_resources(_config("identity"), fixed_size=False)
    assert settle_resources(_config("identity", **{"ray.shared_filesystem": True}), fixed_size=False).max_actors >= 1
    s3 = job_config("s3://bucket/in", "s3://bucket/out", **{"ray.max_actors": None})
    assert settle_resources(s3, fixed_size=False).actor_gpus == 0.0
