"""The Ray Data graph: catalog rows → plan (flat_map, one chunk per block) → remove (actor
pool). Composition only."""

from __future__ import annotations

import logging
import os

from clear_ray.config import RemoveJobConfig
from clear_ray.pipeline.resources import ResourcePlan

log = logging.getLogger(__name__)


def connect(config: RemoveJobConfig) -> None:
    """Join the configured cluster (``--address``, else RAY_ADDRESS, else a new local one)."""
    import ray

    if ray.is_initialized():
        return
    joining = config.ray.address is not None or bool(os.environ.get("RAY_ADDRESS"))
    # A local cluster's dashboard is a dozen processes a batch run never looks at: skip
    # it unless asked (ray.dashboard), it is a large part of a cold run's start-up.
    local_only = {} if joining else {"include_dashboard": config.ray.dashboard}
    ray.init(address=config.ray.address, log_to_driver=not config.quiet,
             logging_level=logging.WARNING if config.quiet else logging.INFO, **local_only)


def build_dataset(config: RemoveJobConfig, catalog_rows: list[dict], resources: ResourcePlan):
    import ray
    import ray.data

    from clear_ray.pipeline.plan_stage import PlanVideo
    from clear_ray.pipeline.remove_stage import RemoverActor, actor_pool_concurrency

    # A Dataset keeps a copy of the DataContext it was created under: these settings
    # apply to this job's Dataset only and the driver's context is left as it was.
    context = ray.data.DataContext.get_current()
    job_settings = {
        "enable_progress_bars": not config.quiet,
        # An actor that dies while loading the model (OOM, a flaky GPU) is replaced rather
        # than ending the run; a remover that can never load still fails after a few deaths.
        "max_consecutive_actor_init_deaths": config.ray.max_actor_init_deaths,
        # Ray Data schedules blocks, not rows: were a video's chunk rows one block, one
        # actor would remove them one after another and the driver would see them only
        # when the whole video was done. A 1-byte target block size makes every row its
        # own block, so a long video's chunks spread over the whole pool and each chunk's
        # row streams back as soon as it is staged. (`repartition(target_num_rows_per_block=1)`
        # does the same as extra tasks of 1 CPU each, which a 1-CPU cluster whose actor
        # holds half of it never schedules.)
        "target_max_block_size": 1,
    }
    saved = {name: getattr(context, name) for name in job_settings}
    try:
        for name, value in job_settings.items():
            setattr(context, name, value)
        # One block per video: probing and planning run in parallel, one task per video.
        dataset = ray.data.from_items(catalog_rows, override_num_blocks=max(1, len(catalog_rows)))
        dataset = dataset.flat_map(PlanVideo(config), num_cpus=resources.task_cpus / 2)
        return dataset.map_batches(
            RemoverActor,
            fn_constructor_kwargs={"config": config, "num_cpus": resources.actor_cpus},
            batch_size=1,  # one chunk per call: a chunk that kills its worker takes nothing else with it
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(min_size=resources.min_actors, max_size=resources.max_actors,
                                               **actor_pool_concurrency(config.remover)),
            num_gpus=resources.actor_gpus,
            num_cpus=resources.actor_cpus,
        )
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
