"""The TorchTrainer both stages build: DDP workers, S3/local storage, checkpoints, retries."""

from __future__ import annotations

from typing import Any, Callable

from clear_ray.training.settings import RayTrainSettings
from clear_ray.training.storage import ray_storage, runs_uri


def connect(settings: RayTrainSettings) -> None:
    """Join ``settings.address`` (or RAY_ADDRESS inside `ray job submit`), else start a local
    cluster; reuse a connection the caller already made."""
    import ray

    if ray.is_initialized():
        return
    ray.init(address=settings.address, log_to_driver=True)


def build_trainer(train_loop: Callable[[dict], None], loop_config: dict[str, Any], *,
                  settings: RayTrainSettings, output_uri: str, datasets: dict[str, Any] | None = None,
                  dataset_config=None):
    """A ``TorchTrainer`` whose run lives at ``OUTPUT/runs/NAME``: running again with the same
    name and output resumes from its latest checkpoint."""
    import ray.train
    from ray.train.torch import TorchTrainer

    resources = {"CPU": settings.cpus_per_worker}
    if settings.use_gpu:
        resources["GPU"] = settings.gpus_per_worker
    storage_path, storage_filesystem = ray_storage(runs_uri(output_uri), settings.storage)
    run_config = ray.train.RunConfig(
        name=settings.name,
        storage_path=storage_path,
        storage_filesystem=storage_filesystem,
        checkpoint_config=ray.train.CheckpointConfig(num_to_keep=settings.keep_checkpoints),
        failure_config=ray.train.FailureConfig(max_failures=settings.max_failures),
    )
    kwargs: dict[str, Any] = {}
    if datasets:
        kwargs["datasets"] = datasets
    if dataset_config is not None:
        kwargs["dataset_config"] = dataset_config
    return TorchTrainer(
        train_loop,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(num_workers=settings.workers, use_gpu=settings.use_gpu,
                                               resources_per_worker=resources),
        run_config=run_config,
        **kwargs,
    )


def report(metrics: dict[str, float], checkpoint_dir: str | None = None) -> None:
    """``ray.train.report`` from every worker; only the worker that passes a directory
    (rank 0) uploads a checkpoint."""
    import ray.train

    checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
    ray.train.report(metrics, checkpoint=checkpoint)


def worker_device():
    """This worker's device (its GPU under Ray Train, else CPU)."""
    import ray.train.torch

    return ray.train.torch.get_device()


def all_reduce_mean(values, world_size: int):
    """Mean of a 1-D float tensor across workers (for metrics; gradients are DDP's job)."""
    import torch.distributed as dist

    if world_size > 1 and dist.is_available() and dist.is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values = values / world_size
    return values


def warmup_cosine(warmup_steps: int, max_steps: int, min_lr_ratio: float) -> Callable[[int], float]:
    """LambdaLR factor: linear warm-up over ``warmup_steps``, then a cosine down to
    ``min_lr_ratio`` at ``max_steps`` (both stages' schedule)."""
    import math

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


_SECRET_FIELDS = ("access_key_id", "secret_access_key")


def storage_secrets(settings: RayTrainSettings) -> dict[str, str | None]:
    """The storage credentials in clear: ``model_dump`` masks SecretStr, and the workers
    need the real values (they travel inside Ray, never into a log or a checkpoint)."""
    storage = settings.storage
    return {name: getattr(storage, name).get_secret_value() if getattr(storage, name) else None
            for name in _SECRET_FIELDS}


def restore_storage_secrets(settings: RayTrainSettings, secrets: dict[str, str | None]) -> None:
    """Put ``storage_secrets`` back into a config rebuilt from its masked dump (in a worker)."""
    for name, value in secrets.items():
        if value is not None:
            setattr(settings.storage, name, value)
