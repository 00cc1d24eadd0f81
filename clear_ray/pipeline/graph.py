"""The Ray Data graph: catalog rows → plan (flat_map) → one chunk per block → remove (actor
pool). Composition only."""

from __future__ import annotations

import logging

from clear_ray.config import RemoveJobConfig
from clear_ray.pipeline.resources import ResourcePlan

log = logging.getLogger(__name__)


def connect(config: RemoveJobConfig) -> None:
    """Join the configured cluster (``--address``, else RAY_ADDRESS, else a new local one)."""
    import ray

    if ray.is_initialized():
        return
    ray.init(address=config.ray.address, log_to_driver=not config.quiet,
             logging_level=logging.WARNING if config.quiet else logging.INFO)


def build_dataset(config: RemoveJobConfig, catalog_rows: list[dict], resources: ResourcePlan):
    import ray
    import ray.data

    from clear_ray.pipeline.plan_stage import PlanVideo
    from clear_ray.pipeline.remove_stage import RemoverActor

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = not config.quiet
    # An actor that dies while loading the model (OOM, a flaky GPU) is replaced rather
    # than ending the run; a remover that can never load still fails after a few deaths.
    context.max_consecutive_actor_init_deaths = config.ray.max_actor_init_deaths

    # One block per video: probing and planning run in parallel, one task per video.
    dataset = ray.data.from_items(catalog_rows, override_num_blocks=max(1, len(catalog_rows)))
    dataset = dataset.flat_map(PlanVideo(config), num_cpus=resources.task_cpus / 2)
    # Ray Data schedules blocks: without this every chunk of a video would stay in its
    # video's block, run on one actor one after another, and reach the driver only when
    # the whole video is done. One row per block spreads a long video's chunks over the
    # whole pool and streams each chunk's row back as soon as it is staged.
    dataset = dataset.repartition(target_num_rows_per_block=1)
    return dataset.map_batches(
        RemoverActor,
        fn_constructor_kwargs={"config": config, "num_cpus": resources.actor_cpus},
        batch_size=1,  # one chunk per call: a chunk that kills its worker takes nothing else with it
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(min_size=resources.min_actors, max_size=resources.max_actors),
        num_gpus=resources.actor_gpus,
        num_cpus=resources.actor_cpus,
    )
