"""Train the lite text segmenter on generated samples and write its shipped weights.

    python -m clear_ray.removers.lite_training.train --samples 12000 --epochs 4 --stop-after 2 \
        --cache-dir /tmp/lite_cache --out clear_ray/removers/weights/lite_textseg.npz

(the shipped weights: epoch 2 of the 4-epoch schedule, seed 1234; ~50 min on 2 busy cores).

Reads top to bottom: make (or reuse) the sample cache, train, validate on samples from a
different seed, save. Everything is generated here from installed fonts and footage; the
benchmark's dev and test fonts and footage are excluded (fonts and footage come from
clear_ray.synth's train split; see text_layers and backgrounds). The shipped weights predate
that split: they saw the dev fonts and photos too (see those modules).
"""

from __future__ import annotations

import argparse
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from clear_ray.removers.lite_net import DEFAULT_WEIGHTS, DEFAULT_WIDTHS, build_text_net, save_weights


def _make_batch(args: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    from clear_ray.removers.lite_training.samples import make_sample

    cv2.setNumThreads(1)
    seed, start, count = args
    inputs, targets = [], []
    for i in range(start, start + count):
        x, y = make_sample(np.random.default_rng([seed, i]))
        inputs.append(x)
        targets.append(y)
    return np.stack(inputs), np.stack(targets)


def make_samples(seed: int, count: int, workers: int, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            if data["x"].shape[0] >= count:
                return data["x"][:count], data["y"][:count]
    step = 250
    jobs = [(seed, s, min(step, count - s)) for s in range(0, count, step)]
    with get_context("spawn").Pool(workers) as pool:
        parts = pool.map(_make_batch, jobs)
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    if cache is not None:
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, x=x, y=y)
        tmp.replace(cache)
    return x, y


def _loss(logits, target):
    import torch
    from torch.nn import functional as F

    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(2.0))
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + 1) / (prob.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return bce + 0.5 * dice.mean()


def evaluate(net, x: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    import torch

    tp = fp = fn = 0
    with torch.inference_mode():
        for s in range(0, len(x), 64):
            prob = torch.sigmoid(net(torch.from_numpy(x[s:s + 64].astype(np.float32)))).numpy()[:, 0]
            pred, true = prob > threshold, y[s:s + 64] > 0
            tp += int((pred & true).sum())
            fp += int((pred & ~true).sum())
            fn += int((~pred & true).sum())
    return {"precision": tp / max(1, tp + fp), "recall": tp / max(1, tp + fn), "iou": tp / max(1, tp + fp + fn)}


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12000)
    parser.add_argument("--val-samples", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=4, help="length of the learning-rate schedule")
    parser.add_argument("--stop-after", type=int, default=None, help="stop after this many epochs")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep generated samples here")
    parser.add_argument("--init", type=Path, default=None, help="start from these weights")
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    args = parser.parse_args(argv)

    # 1. Samples (training and validation come from different seeds).
    started = time.time()
    cache = args.cache_dir
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    x, y = make_samples(args.seed, args.samples, args.workers, cache and cache / f"train_{args.seed}.npz")
    vx, vy = make_samples(args.seed + 1, args.val_samples, args.workers, cache and cache / f"val_{args.seed + 1}.npz")
    print(f"samples: {len(x)} train, {len(vx)} val, text fraction {y.mean():.3f}, {time.time() - started:.0f} s", flush=True)

    # 2. Train.
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    net = build_text_net(DEFAULT_WIDTHS)
    if args.init is not None:
        from clear_ray.removers.lite_net import load_text_net

        net = load_text_net(args.init)
    net.train()
    steps = args.epochs * (len(x) // args.batch)
    optimiser = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    rng = np.random.default_rng(args.seed)
    step = 0
    for epoch in range(args.epochs):
        order = rng.permutation(len(x))
        total = 0.0
        for s in range(0, len(order) - args.batch + 1, args.batch):
            index = np.sort(order[s:s + args.batch])
            xb = torch.from_numpy(x[index].astype(np.float32))
            yb = torch.from_numpy(y[index].astype(np.float32))[:, None]
            if rng.random() < 0.5:  # captions read either way round for the segmenter
                xb, yb = xb.flip(-1), yb.flip(-1)
            loss = _loss(net(xb), yb)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach())
            step += 1
        net.eval()
        metrics = evaluate(net, vx, vy)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        save_weights(net, args.out, DEFAULT_WIDTHS)  # every epoch: a long run can be stopped early
        net.train()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / max(1, len(order) // args.batch):.4f} "
              f"val {metrics} ({time.time() - started:.0f} s)", flush=True)
        if args.stop_after is not None and epoch + 1 >= args.stop_after:
            break

    # 3. Save.
    net.eval()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(net, args.out, DEFAULT_WIDTHS)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
