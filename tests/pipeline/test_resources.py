"""Actor pool sizing: GPU backends follow the GPUs, laptops never wait for one, and
planning/stitching always keep CPU to run on."""

import pytest

from clear_ray.pipeline.graph import plan_resources
from tests.pipeline.helpers import job_config


@pytest.mark.parametrize(("backend", "cluster", "overrides", "expected"), [
    # (actor_gpus, actor_cpus, max_actors, task_cpus)
    ("clear", {"CPU": 32, "GPU": 4}, {}, (1.0, 1.0, 4, 1.0)),
    ("clear", {"CPU": 8}, {}, (0.0, 1.0, 7, 1.0)),  # a laptop: CPU actors, no wait for a GPU
    ("lite", {"CPU": 32, "GPU": 4}, {}, (0.0, 1.0, 31, 1.0)),  # lite never takes a GPU
    ("lite", {"CPU": 2, "GPU": 1}, {}, (0.0, 1.0, 1, 1.0)),
    ("identity", {"CPU": 1}, {}, (0.0, 0.5, 1, 0.5)),  # a 1-CPU cluster still plans and stitches
    ("clear", {"CPU": 16, "GPU": 2}, {"ray.num_gpus_per_actor": 0.5}, (0.5, 1.0, 4, 1.0)),
    ("clear", {"CPU": 16, "GPU": 8}, {"ray.max_actors": 3}, (1.0, 1.0, 3, 1.0)),
])
def test_resource_plan(backend, cluster, overrides, expected):
    settings = {"remover.backend": backend, "ray.max_actors": None, **overrides}
    if backend == "clear":
        settings["remover.clear.model_dir"] = "/models/wan"
    plan = plan_resources(job_config("in", "out", **settings), cluster)
    assert (plan.actor_gpus, plan.actor_cpus, plan.max_actors, plan.task_cpus) == expected
    # Actors never hold every CPU: plan/stitch/mux tasks can always run.
    assert plan.actor_cpus * plan.max_actors + plan.task_cpus <= cluster["CPU"]
