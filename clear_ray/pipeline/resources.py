"""What the remover actor pool asks the cluster for, from the configuration.

An autoscaling cluster shows at start only the nodes it has (often a head without GPUs),
so the pool is sized from ``ray.*`` settings, not from a ``ray.cluster_resources()``
snapshot: a GPU backend asks for GPU actors and the autoscaler adds GPU nodes. Only a
cluster this job started itself (fixed size, nothing will join) is fitted to what it has.
A GPU backend never silently runs on CPU: with no GPU in sight it waits a bounded time
for one, or runs on CPU when the user allowed it (``ray.allow_cpu_fallback``).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass

from clear_ray import storage
from clear_ray.config import RemoveJobConfig

log = logging.getLogger(__name__)


class ClusterUnsuitable(RuntimeError):
    """The cluster cannot run this job as configured (one-line reason); nothing was touched."""


@dataclass(frozen=True)
class ResourcePlan:
    actor_gpus: float
    actor_cpus: float
    min_actors: int
    max_actors: int
    task_cpus: float  # each plan / stitch / mux task


def wanted_gpus_per_actor(config: RemoveJobConfig) -> float:
    from clear_ray.removers import backend_wants_gpu

    if config.ray.num_gpus_per_actor is not None:
        return config.ray.num_gpus_per_actor
    return 1.0 if backend_wants_gpu(config.remover) else 0.0


def plan_resources(config: RemoveJobConfig, cluster: dict[str, float], *, fixed_size: bool,
                   actor_gpus: float | None = None) -> ResourcePlan:
    """The pool for this job. ``cluster`` is what the cluster has now; it bounds the pool
    only when ``fixed_size`` (a cluster this job started). ``actor_gpus`` overrides the
    configured GPUs per actor (0 after an allowed CPU fallback)."""
    ray_config = config.ray
    gpus = float(cluster.get("GPU", 0) or 0)
    cpus = float(cluster.get("CPU", 0) or 0)
    actor_gpus = wanted_gpus_per_actor(config) if actor_gpus is None else actor_gpus
    # Plan, stitch and mux tasks keep up to one CPU so that videos finish while chunks are
    # still being removed. A cluster showing no CPU yet (a GPU-less, CPU-less head) gets
    # the defaults; its workers bring the CPUs.
    task_cpus = min(1.0, cpus / 2) if cpus > 0 else 1.0
    actor_cpus = ray_config.num_cpus_per_actor
    free_cpus = max(0.0, cpus - task_cpus)
    cpu_backend = wanted_gpus_per_actor(config) == 0  # not a GPU backend fallen back to CPU (a model per actor)
    if fixed_size and cpus > 0 and cpu_backend and "num_cpus_per_actor" not in ray_config.model_fields_set:
        # CPU actors on a machine of their own: one per core, sharing the tasks' CPU. The
        # tasks need it only part of the time, and keeping it for them leaves it idle while
        # the actors are the bottleneck: lite on the 12 test clips, 2 cores, left 25 of
        # ~110 CPU-s idle with one actor of 1 CPU, 2 with two actors of 0.5 CPU. (Wall time
        # on this noisy VM: 57 -> 47 s in one interleaved run, 53 -> 55 s in another.)
        fits = max(1, int(cpus // actor_cpus))
        if ray_config.max_actors:
            fits = min(fits, ray_config.max_actors)
        actor_cpus = math.floor(free_cpus / fits * 1e4) / 1e4  # Ray counts CPUs in 1e-4 steps
    else:
        if fixed_size and cpus > 0:
            actor_cpus = min(actor_cpus, free_cpus)  # a 1-CPU laptop still runs one actor
        fits = int(free_cpus // actor_cpus)
    if actor_gpus > 0:
        fits = min(fits, int(gpus // actor_gpus))
    if fixed_size:
        max_actors = max(1, min(fits, ray_config.max_actors or fits))
    else:
        max_actors = ray_config.max_actors or max(ray_config.min_actors, fits)
    return ResourcePlan(actor_gpus=actor_gpus, actor_cpus=actor_cpus,
                        min_actors=min(ray_config.min_actors, max_actors), max_actors=max_actors,
                        task_cpus=task_cpus)


def is_fixed_size(config: RemoveJobConfig) -> bool:
    """True when the job runs on a local cluster it starts (or the test session's own):
    no ``--address`` and no RAY_ADDRESS (`ray job submit` sets it)."""
    return config.ray.address is None and not os.environ.get("RAY_ADDRESS")


def settle_resources(config: RemoveJobConfig, *, fixed_size: bool) -> ResourcePlan:
    """Decide GPU or CPU actors (waiting a bounded time for a GPU when needed), refuse local
    paths on a multi-node cluster, and return the plan. Call after ``ray.init``."""
    import ray

    wanted = wanted_gpus_per_actor(config)
    actor_gpus = wanted
    cluster = ray.cluster_resources()
    if wanted > 0 and float(cluster.get("GPU", 0) or 0) < wanted:
        backend = config.remover.plugin or config.remover.resolved_backend()
        if config.ray.allow_cpu_fallback:
            _say(f"clear-ray: no GPU in the cluster: running {backend} on CPU (ray.allow_cpu_fallback)")
            actor_gpus = 0.0
        elif fixed_size:
            raise ClusterUnsuitable(
                f"{backend} needs a GPU and this local Ray cluster has none; use a GPU machine, "
                "--address a cluster with GPUs, or allow CPU with --allow-cpu-fallback")
        else:
            _check_local_paths(config, multi_node=True)  # GPU nodes will join: refuse before waiting
            cluster = wait_for_gpus(config, wanted, backend)
    _check_local_paths(config, multi_node=len([n for n in ray.nodes() if n.get("Alive")]) > 1)
    return plan_resources(config, cluster, fixed_size=fixed_size, actor_gpus=actor_gpus)


def wait_for_gpus(config: RemoveJobConfig, per_actor: float, backend: str) -> dict[str, float]:
    """Ask the autoscaler for ``min_actors`` GPU actors' worth of nodes and wait up to
    ``ray.gpu_wait_s`` for the first GPU to appear; the pool's own demand does the rest."""
    import ray
    from ray.autoscaler.sdk import request_resources

    ray_config = config.ray
    request_resources(bundles=[{"GPU": per_actor, "CPU": ray_config.num_cpus_per_actor}] * ray_config.min_actors)
    _say(f"clear-ray: {backend} needs a GPU and the cluster has none yet: waiting up to "
                 f"{ray_config.gpu_wait_s:g} s for the autoscaler to add one (--allow-cpu-fallback runs on CPU)")
    deadline = time.monotonic() + ray_config.gpu_wait_s
    while True:
        cluster = ray.cluster_resources()
        if float(cluster.get("GPU", 0) or 0) >= per_actor:
            return cluster
        if time.monotonic() >= deadline:
            raise ClusterUnsuitable(
                f"{backend} needs a GPU and none joined the cluster within {ray_config.gpu_wait_s:g} s "
                "(ray.gpu_wait_s); check the cluster's GPU worker group, or allow CPU with --allow-cpu-fallback")
        time.sleep(1.0)


def release_resource_request() -> None:
    """Drop the standing autoscaler request so that idle GPU nodes can scale down."""
    try:
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=[])
    except Exception as error:  # best effort: the cluster may already be gone
        log.debug("could not clear the resource request: %s", error)


def _check_local_paths(config: RemoveJobConfig, *, multi_node: bool) -> None:
    if not multi_node or config.ray.shared_filesystem:
        return
    local = [name for name, uri in (("SRC", config.src), ("DST", config.dst)) if not storage.is_remote(uri)]
    if local:
        raise ClusterUnsuitable(
            f"{' and '.join(local)} {'is a local path' if len(local) == 1 else 'are local paths'} but the Ray "
            "cluster has several nodes, which would not see the same files; use s3://..., or declare a "
            "filesystem every node mounts at the same path with --shared-filesystem (ray.shared_filesystem)")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
