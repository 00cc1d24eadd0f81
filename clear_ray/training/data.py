"""Training data through Ray Data: a *sample plan* of integers, pixels decoded in the workers.

The driver never touches pixels. It builds one small Dataset, ``plan``: the global sample
positions ``0 .. steps * global_batch - 1``. Every worker iterates the same plan in order
(``get_dataset_shard("plan").iter_torch_batches(batch_size=global_batch)``); the batch for
step ``s`` is positions ``[s * G, (s + 1) * G)`` and worker ``r`` of ``W`` takes the slice
``[r * G / W, (r + 1) * G / W)`` of it. Its collate function maps each of its positions to
(pair, frame, augmentation seed) with a pure function of the position and decodes those
frames. So:

- the global batch of a step is the same for any number of workers (1 worker x batch 8 and
  2 workers x batch 4 train on the same samples: the DDP update is the same);
- a resumed run skips the positions before its checkpoint without decoding them;
- each worker decodes only its own slice, with decode overlapped by Ray Data's prefetch.

A plan of integers costs 8 bytes a sample, so it is built once on the driver and the
workers need no CPU for Ray Data tasks while they train.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

PLAN = "plan"
POSITION = "position"


def plan_dataset(total_samples: int):
    """The plan: one int64 column ``position`` with every global sample position, in order.

    Built from one array on the driver: no read tasks, and blocks in position order (a
    parallel ``range`` read materializes its blocks in whatever order they finish)."""
    import numpy as np
    import pyarrow as pa
    import ray

    if total_samples < 1:
        raise ValueError(f"a training plan needs at least one sample, got {total_samples}")
    return ray.data.from_arrow(pa.table({POSITION: np.arange(total_samples, dtype=np.int64)}))


def plan_data_config():
    """``DataConfig`` for the plan: not split (each worker takes its slice of each global
    batch) and iterated in order, so batch ``s`` is step ``s`` on every worker."""
    import ray.train
    from ray.train import DataConfig

    options = DataConfig.default_ingest_options()
    options.preserve_order = True
    return ray.train.DataConfig(datasets_to_split=[], execution_options={PLAN: options})


def local_batch_size(global_batch: int, world_size: int) -> int:
    if global_batch % world_size:
        raise ValueError(f"batch_size {global_batch} must be a multiple of the worker count {world_size}")
    return global_batch // world_size


def epoch_item(position: int, count: int, seed: int) -> int:
    """Which of ``count`` items global position ``position`` draws: every item once per epoch,
    in an order reshuffled each epoch and fixed by ``seed``."""
    import numpy as np

    epoch, offset = divmod(int(position), count)
    order = np.random.default_rng([seed, epoch]).permutation(count)
    return int(order[offset])


def position_seed(position: int, seed: int) -> int:
    """A 63-bit seed for the random choices (frame, augmentations) of one sample."""
    digest = hashlib.blake2b(f"{seed}:{position}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def plan_collate(load_samples: Callable[[list[int]], dict[str, Any]], *, rank: int, world_size: int,
                 global_batch: int, skip_below: int):
    """A Ray Data collate function: this worker's slice of a global batch, decoded by
    ``load_samples(positions) -> dict of tensors``. Batches before ``skip_below`` (a resumed
    run) come back as positions only."""
    import torch
    from ray.data.collate_fn import NumpyBatchCollateFn

    local = local_batch_size(global_batch, world_size)

    class PlanCollate(NumpyBatchCollateFn):
        def __call__(self, batch: dict) -> dict:
            positions = [int(p) for p in batch[POSITION][rank * local:(rank + 1) * local]]
            out = {"position": torch.tensor(positions, dtype=torch.int64)}
            if positions and positions[0] >= skip_below:
                out.update(load_samples(positions))
            return out

    return PlanCollate()


def iter_plan_batches(collate, global_batch: int):
    """This worker's batches, one per step, in plan order."""
    import ray.train

    shard = ray.train.get_dataset_shard(PLAN)
    return shard.iter_torch_batches(batch_size=global_batch, collate_fn=collate, drop_last=True,
                                    prefetch_batches=2)
