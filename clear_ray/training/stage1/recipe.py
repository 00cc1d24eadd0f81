"""Stage I training on Ray Train, top to bottom.

Driver (``train_stage1``): read the pairs index (metadata only), build the sample plan,
run a TorchTrainer, export the final weights. Workers (``train_loop_per_worker``): build the
network, resume from the latest checkpoint if there is one, then step through this worker's
slice of the plan, reporting metrics every ``run.report_every`` steps and a checkpoint every
``run.checkpoint_every`` steps and at the end.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from clear_ray.training.stage1.config import Stage1TrainConfig

LOSS_NAMES = ("total", "mask", "focal", "dice", "iou", "recall", "orthogonality", "reconstruction")


@dataclass
class Stage1Result:
    export_uri: str
    step: int
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def train_stage1(config: Stage1TrainConfig) -> Stage1Result:
    from clear_ray.pairs import read_index
    from clear_ray.training import data, runner
    from clear_ray.training.stage1.export import export_checkpoint
    from clear_ray.training.storage import fsspec_options

    # 1. The index: metadata only; workers decode their own frames.
    storage_options = fsspec_options(config.run.storage)
    rows = read_index(config.pairs, storage_options=storage_options)
    train_rows = [row for row in rows if row["split"] == "train"]
    dev_rows = [row for row in rows if row["split"] == "dev"]
    if not train_rows:
        raise ValueError(f"{config.pairs} has no train pairs ({len(rows)} rows in all)")

    # 2. The cluster and the sample plan (integers, materialized before the workers start).
    runner.connect(config.run)
    plan = data.plan_dataset(config.max_steps * config.batch_size)

    # 3. Train (resumes when OUTPUT/runs/NAME holds a checkpoint).
    loop_config = {"config": config.model_dump(mode="json"),
                   "secrets": runner.storage_secrets(config.run), "train_rows": train_rows, "dev_rows": dev_rows}
    trainer = runner.build_trainer(train_loop_per_worker, loop_config, settings=config.run,
                                   output_uri=config.output, datasets={data.PLAN: plan},
                                   dataset_config=data.plan_data_config())
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training ended without a checkpoint ({result.error})")

    # 4. Export what Stage II loads.
    with result.checkpoint.as_directory() as directory:
        export_uri, step, history = export_checkpoint(directory, config, storage_options)
    return Stage1Result(export_uri=export_uri, step=step, metrics=dict(result.metrics or {}), history=history)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    import ray.train
    import torch

    from clear_ray.training import checkpoints, data, runner
    from clear_ray.training.stage1.losses import Stage1Objective
    from clear_ray.training.stage1.model import OcclusionPrior
    from clear_ray.training.stage1.samples import TrainSampler, evaluate_dev, load_dev_frames, mask_scores
    from clear_ray.training.storage import fsspec_options

    # 1. Settings and place in the world.
    config = Stage1TrainConfig.model_validate(loop_config["config"])
    runner.restore_storage_secrets(config.run, loop_config["secrets"])
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    device = runner.worker_device()
    storage_options = fsspec_options(config.run.storage)

    # 2. Network, loss, optimizer, schedule: identical on every worker (same seed).
    torch.manual_seed(config.seed)
    objective = Stage1Objective(OcclusionPrior(config.model), config.loss).to(device)
    optimizer = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad],
                                  lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, runner.warmup_cosine(
        config.optim.warmup_steps, config.max_steps, config.optim.min_lr_ratio))

    # 3. Resume from the latest checkpoint of this run, if any.
    step, history = 0, []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            step, extra = checkpoints.load_training_state(directory, model=objective, optimizer=optimizer,
                                                          scheduler=scheduler)
        history = list(extra.get("history", []))
    resumed_from = step
    model = ray.train.torch.prepare_model(objective)

    # 4. Data: this worker's slice of each global batch; dev frames for rank 0's scores.
    sampler = TrainSampler(loop_config["train_rows"], config.data, config.seed, storage_options)
    collate = data.plan_collate(sampler, rank=rank, world_size=world_size, global_batch=config.batch_size,
                                skip_below=step * config.batch_size)
    dev = load_dev_frames(loop_config["dev_rows"], config.data, storage_options) if rank == 0 else {}
    baseline = {}
    if dev:
        baseline = {f"dev_pseudo_{k}": v for k, v in mask_scores(dev["pseudo"][:, 0], dev["truth"][:, 0]).items()}

    # 5. The loop.
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    model.train()
    window_start, window_step = time.monotonic(), step
    for position_step, batch in enumerate(data.iter_plan_batches(collate, config.batch_size)):
        if position_step < step:
            continue  # consumed before the checkpoint we resumed from
        with autocast:
            parts = model(batch["subtitled"].to(device), batch["clean"].to(device), batch["target"].to(device),
                          batch["mask_weight"].to(device))
        optimizer.zero_grad(set_to_none=True)
        parts["total"].backward()
        if config.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        step += 1

        last = step >= config.max_steps
        if step % config.run.report_every and step % config.run.checkpoint_every and not last:
            continue
        losses = runner.all_reduce_mean(torch.stack([parts[n].detach().float() for n in LOSS_NAMES]), world_size)
        metrics: dict[str, Any] = {f"loss_{n}": float(v) for n, v in zip(LOSS_NAMES, losses)}
        now = time.monotonic()
        metrics.update(step=step, resumed_from_step=resumed_from, lr=scheduler.get_last_lr()[0],
                       samples=step * config.batch_size,
                       samples_per_s=(step - window_step) * config.batch_size / max(now - window_start, 1e-9),
                       **baseline)
        weights = checkpoints.unwrap(model).weighting.weights()
        metrics.update({f"task_weight_{n}": w for n, w in zip(("mask", "orthogonality", "reconstruction"), weights)})
        if dev:
            scores = evaluate_dev(checkpoints.unwrap(model).network, dev, device)
            metrics.update({f"dev_{k}": v for k, v in scores.items()})
        history.append(metrics)
        if rank == 0 and (step % config.run.checkpoint_every == 0 or last):
            with tempfile.TemporaryDirectory() as directory:
                checkpoints.save_training_state(directory, model=model, optimizer=optimizer, scheduler=scheduler,
                                                step=step, extra={"history": history})
                runner.report(metrics, directory)
        else:
            runner.report(metrics)
        if last:
            break
        window_start, window_step = time.monotonic(), step
