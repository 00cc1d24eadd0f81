"""The Ray Data graph: catalog rows → plan (flat_map) → denoise (actor pool). Composition only."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from clear_ray.config import RemoveJobConfig

log = logging.getLogger(__name__)


def connect(config: RemoveJobConfig) -> None:
    """Join the configured cluster (``--address``, else RAY_ADDRESS, else a new local one)."""
    import ray

    if ray.is_initialized():
        return
    ray.init(address=config.ray.address, log_to_driver=not config.quiet,
             logging_level=logging.WARNING if config.quiet else logging.INFO)


@dataclass(frozen=True)
class ResourcePlan:
    actor_gpus: float
    actor_cpus: float
    min_actors: int
    max_actors: int
    task_cpus: float  # each plan / stitch / mux task


def plan_resources(config: RemoveJobConfig, cluster: dict[str, float]) -> ResourcePlan:
    """How many remover actors, with what resources, for this backend on this cluster.

    A GPU backend gets one GPU per actor when the cluster has GPUs; on a cluster without
    any (a laptop) it runs on CPU actors instead of waiting forever for a GPU. Actors never
    take the last CPU (up to one, or half of a 1-CPU cluster): planning, stitching and
    muxing need it, or the actors would wait forever for input and no video would finish
    before the last chunk was denoised.
    """
    from clear_ray.removers import backend_wants_gpu

    ray_config = config.ray
    gpus = float(cluster.get("GPU", 0))
    cpus = float(cluster.get("CPU", 1))
    reserve = min(1.0, cpus / 2)
    if ray_config.num_gpus_per_actor is not None:
        actor_gpus = ray_config.num_gpus_per_actor if gpus > 0 else 0.0
    else:
        actor_gpus = 1.0 if backend_wants_gpu(config.remover) and gpus >= 1 else 0.0
    actor_cpus = min(ray_config.num_cpus_per_actor, cpus - reserve)
    fits_cpu = int((cpus - reserve) // actor_cpus)
    fits = min(fits_cpu, int(gpus // actor_gpus)) if actor_gpus > 0 else fits_cpu
    max_actors = max(1, min(fits, ray_config.max_actors or fits))
    return ResourcePlan(actor_gpus=actor_gpus, actor_cpus=actor_cpus, min_actors=min(ray_config.min_actors, max_actors),
                        max_actors=max_actors, task_cpus=reserve)


def build_dataset(config: RemoveJobConfig, catalog_rows: list[dict], resources: ResourcePlan):
    import ray
    import ray.data

    from clear_ray.pipeline.denoise_stage import RemoverActor
    from clear_ray.pipeline.plan_stage import PlanVideo

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = not config.quiet

    # One block per video: probing and planning run in parallel, one task per video.
    dataset = ray.data.from_items(catalog_rows, override_num_blocks=max(1, len(catalog_rows)))
    dataset = dataset.flat_map(PlanVideo(config), num_cpus=resources.task_cpus / 2)
    return dataset.map_batches(
        RemoverActor,
        fn_constructor_kwargs={"config": config, "num_cpus": resources.actor_cpus},
        batch_size=1,  # one chunk per call: a chunk that kills its worker takes nothing else with it
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(min_size=resources.min_actors, max_size=resources.max_actors),
        num_gpus=resources.actor_gpus,
        num_cpus=resources.actor_cpus,
    )
