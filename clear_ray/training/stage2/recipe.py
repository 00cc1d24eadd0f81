"""Stage II training on Ray Train, top to bottom.

Driver (``train_stage2``): read the pairs index (metadata only), build the sample plan,
run a TorchTrainer (DDP or FSDP, ``parallel.py``), export the LoRA and head from the final
checkpoint. Workers (``train_loop_per_worker``): build the frozen base + LoRA + head
(``Stage2Engine``), resume from the run's latest checkpoint if there is one, then for
every step accumulate gradients over this worker's slice of the global batch, clip, step
AdamW and the warm-up + cosine schedule, report, and checkpoint whole tensors from rank 0.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any

from clear_ray.training.stage2.config import Stage2Config

METRICS = ("loss", "gen", "distill", "sparse", "temporal")


@dataclass
class Stage2Result:
    exports: dict[str, str]
    step: int
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def train_stage2(config: Stage2Config) -> Stage2Result:
    from clear_ray.models.files import locate_model_files
    from clear_ray.pairs import read_index
    from clear_ray.training import data, runner
    from clear_ray.training.stage2.export import export_checkpoint
    from clear_ray.training.storage import fsspec_options

    # 1. The model files (a bad dir fails here in a second, not in every worker) and the index: metadata only; workers decode (or read cached latents of) their own windows.
    locate_model_files(config.model_dir)
    storage_options = fsspec_options(config.run.storage)
    rows = [row for row in read_index(config.pairs, storage_options=storage_options) if row["split"] == config.split]
    if not rows:
        raise ValueError(f"{config.pairs} has no {config.split!r} pairs")
    if config.objective.prior == "alpha" and any(row.get("alpha_uri") is None for row in rows):
        raise ValueError(f"{config.pairs} has pairs without exact alpha; train with objective.prior = stage1")
    if config.latent_cache is not None:
        from clear_ray.training.stage2.latent_cache import check_cache

        check_cache(config, storage_options)

    # 2. The cluster and the sample plan (integers, materialized before the workers start).
    runner.connect(config.run)
    plan = data.plan_dataset(config.max_steps * config.batch_size)

    # 3. Train (resumes when OUTPUT/runs/NAME holds a checkpoint).
    loop_config = {"config": config.model_dump(mode="json"), "secrets": runner.storage_secrets(config.run), "rows": rows}
    trainer = runner.build_trainer(train_loop_per_worker, loop_config, settings=config.run, output_uri=config.output,
                                   datasets={data.PLAN: plan}, dataset_config=data.plan_data_config())
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training ended without a checkpoint ({result.error})")

    # 4. Export what `clear-ray remove --backend clear --lora` and later stages load.
    metrics = dict(result.metrics or {})
    with result.checkpoint.as_directory() as directory:
        exports = export_checkpoint(directory, config, storage_options, metrics)
        from clear_ray.training.stage2.checkpoint import load_state_extra

        step, history = load_state_extra(directory)
    return Stage2Result(exports=exports, step=step, metrics=metrics, history=history)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    import torch

    from clear_ray.training import data, runner
    from clear_ray.training.checkpoints import load_state_file
    from clear_ray.training.stage2 import checkpoint as checkpoints
    from clear_ray.training.stage2 import parallel
    from clear_ray.training.stage2.engine import Stage2Engine
    from clear_ray.training.stage2.samples import WindowSampler
    from clear_ray.training.storage import fsspec_options

    # 1. Settings and place in the world.
    config = Stage2Config.model_validate(loop_config["config"])
    runner.restore_storage_secrets(config.run, loop_config["secrets"])
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    device = runner.worker_device()
    storage_options = fsspec_options(config.run.storage)

    # 2. Frozen base + LoRA + head + objective, identical on every worker; the trainable
    #    tensors of this run's latest checkpoint, if any (whole tensors, whatever strategy
    #    wrote them), before the module is wrapped (FSDP2 shards what it finds).
    engine = Stage2Engine(config, device)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            checkpoints.load_trainable(directory, engine.module)
    module = parallel.wrap(engine.module, config.strategy, device)

    # 3. Optimizer and schedule over the (possibly sharded) trainable parameters; their
    #    state from the checkpoint.
    optimizer = torch.optim.AdamW(engine.trainable_parameters(), lr=config.optim.lr,
                                  weight_decay=config.optim.weight_decay)
    if parallel.is_sharded(module):
        parallel.make_optimizer_state_full(optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, runner.warmup_cosine(
        config.optim.warmup_steps, config.max_steps, config.optim.min_lr_ratio))
    step, history = 0, []
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            step, extra = load_state_file(directory, optimizer=optimizer, scheduler=scheduler)
        history = list(extra.get("history", []))
    resumed_from = step

    # 4. Data: this worker's slice of each global batch, in plan order.
    sampler = WindowSampler(loop_config["rows"], frames=config.frames, width=config.width, height=config.height,
                            seed=config.seed, prior=config.objective.prior, storage_options=storage_options,
                            latent_cache=config.latent_cache)
    collate = data.plan_collate(sampler, rank=rank, world_size=world_size, global_batch=config.batch_size,
                                skip_below=step * config.batch_size)

    # 5. The loop: accumulate over micro-batches (gradients are exchanged on the last), then step.
    module.train()
    micro, accumulation = config.micro_batch, config.accumulation
    for position_step, batch in enumerate(data.iter_plan_batches(collate, config.batch_size)):
        if position_step < step:
            continue  # consumed before the checkpoint we resumed from
        optimizer.zero_grad(set_to_none=True)
        sums = dict.fromkeys(METRICS, 0.0)
        for index in range(accumulation):
            part = {name: value[index * micro:(index + 1) * micro] for name, value in batch.items()}
            with parallel.gradient_sync(module, enabled=index == accumulation - 1):
                loss, metrics = engine.loss(module, part, step)
                (loss / accumulation).backward()
            for name in METRICS:
                sums[name] += metrics.get(name, 0.0) / accumulation
        grad_norm = torch.nn.utils.clip_grad_norm_(engine.trainable_parameters(), config.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        step += 1

        last = step >= config.max_steps
        if step % config.run.report_every and step % config.run.checkpoint_every and not last:
            continue
        values = runner.all_reduce_mean(torch.tensor([sums[n] for n in METRICS], device=device), world_size)
        report = {f"loss_{n}" if n != "loss" else "loss": float(v) for n, v in zip(METRICS, values)}
        report.update(step=step, resumed_from_step=resumed_from, lr=scheduler.get_last_lr()[0],
                      grad_norm=float(grad_norm), samples=step * config.batch_size,
                      sharded=int(parallel.is_sharded(module)))
        history.append(report)
        if step % config.run.checkpoint_every == 0 or last:
            # Every worker gathers (FSDP shards need all of them); rank 0 writes and uploads.
            sharded = parallel.is_sharded(module)
            state = checkpoints.gather(module, optimizer) if rank == 0 or sharded else None
            if rank == 0:
                with tempfile.TemporaryDirectory() as directory:
                    checkpoints.write(directory, *state, scheduler=scheduler, step=step, extra={"history": history})
                    runner.report(report, directory)
            else:
                runner.report(report)
        else:
            runner.report(report)
        if last:
            break

