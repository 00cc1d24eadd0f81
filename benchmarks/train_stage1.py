"""Stage I training throughput.

CPU mode (default): the same tiny run with 1 DDP worker and with 2, same global batch, on a
local 2-CPU Ray cluster with a local pairs dataset (made by the real make-pairs job unless
--pairs is given). Prints samples/s of each (median over reports, the first one skipped as
warm-up) and the ratio. Torch runs one thread per worker so the two runs use 1 and 2 cores.

    python benchmarks/train_stage1.py [--steps 40] [--batch 8] [--size 96x128] [--pairs DIR]

GPU mode: the real network (two ResNet-50 encoders + FPN + heads) at 480x832 in bf16 on the
one visible GPU: forward, loss, backward and AdamW step on synthetic frames (the data path
is measured by the CPU mode). Prints samples/s and peak GPU memory; refuses without CUDA.

    python benchmarks/train_stage1.py --gpu [--batch 16] [--steps 30] [--size 480x832]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TINY_MODEL = {"backbone": {"block": "basic", "layers": [1, 1, 1, 1], "width": 16},
              "fpn_channels": 32, "feature_channels": 32}

RUN_ONE = textwrap.dedent("""
    import json, sys, tempfile
    import ray
    from clear_ray.config import load_config
    from clear_ray.training.stage1.config import Stage1TrainConfig
    from clear_ray.training.stage1.recipe import train_stage1
    settings = json.loads(sys.argv[1])
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="crb-", dir="/tmp"))
    result = train_stage1(load_config(Stage1TrainConfig, env={}, overrides=settings))
    print("RESULT " + json.dumps([m["samples_per_s"] for m in result.history]))
""")


def make_pairs(directory: Path) -> str:
    from clear_ray.config import load_config
    from clear_ray.pairs.config import MakePairsConfig
    from clear_ray.pairs.job import run_make_pairs
    from clear_ray.testing.clips import ClipSpec, write_clip

    import ray

    src = directory / "clean"
    for i, pattern in enumerate(["testsrc2", "testsrc", "smptehdbars", "rgbtestsrc"]):
        write_clip(src / f"clip{i}.mp4", ClipSpec(frames=34, width=256, height=192, pattern=pattern, audio_tracks=0))
    dst = directory / "pairs"
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="crb-", dir="/tmp"))
    try:
        run_make_pairs(load_config(MakePairsConfig, env={}, overrides={
            "src": str(src), "dst": str(dst), "windows.frames": 17, "windows.per_video": 2, "quiet": True}))
    finally:
        ray.shutdown()
    return str(dst)


def cpu_mode(args) -> None:
    height, width = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="bench-stage1-") as scratch:
        pairs = args.pairs or make_pairs(Path(scratch))
        rates = {}
        for workers in (1, 2):
            settings = {"pairs": pairs, "output": str(Path(scratch) / f"out{workers}"), "batch_size": args.batch,
                        "max_steps": args.steps, "model": TINY_MODEL, "data.height": height, "data.width": width,
                        "data.max_dev_pairs": 1, "data.dev_frames_per_pair": 1, "optim.warmup_steps": 2,
                        "run.workers": workers, "run.report_every": max(1, args.steps // 8),
                        "run.checkpoint_every": args.steps}
            env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), RAY_DATA_DISABLE_PROGRESS_BARS="1")
            done = subprocess.run([sys.executable, "-c", RUN_ONE, json.dumps(settings)], env=env,
                                  capture_output=True, text=True, timeout=3600)
            line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"run with {workers} worker(s) failed:\n{done.stderr[-3000:]}")
            per_report = json.loads(line[len("RESULT "):])
            rates[workers] = statistics.median(per_report[1:] or per_report)
            print(f"{workers} worker(s): {rates[workers]:.2f} samples/s (reports: "
                  f"{', '.join(f'{r:.2f}' for r in per_report)})", flush=True)
        print(f"speed-up 2 vs 1 workers: {rates[2] / rates[1]:.2f}x (same global batch {args.batch}, {height}x{width})")


def gpu_mode(args) -> None:
    import torch

    if not torch.cuda.is_available():
        sys.exit("--gpu needs a CUDA device (none is visible); the CPU mode runs anywhere")
    from clear_ray.training.stage1.config import Stage1LossConfig, Stage1ModelConfig
    from clear_ray.training.stage1.losses import Stage1Objective
    from clear_ray.training.stage1.model import OcclusionPrior

    height, width = (int(v) for v in args.size.split("x"))
    device = torch.device("cuda")
    objective = Stage1Objective(OcclusionPrior(Stage1ModelConfig()), Stage1LossConfig()).to(device)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4)
    subtitled = torch.rand(args.batch, 3, height, width, device=device)
    clean = torch.rand_like(subtitled)
    target = (torch.rand(args.batch, 1, height, width, device=device) > 0.97).float()
    weight = torch.ones(args.batch, device=device)
    params = sum(p.numel() for p in objective.parameters())
    torch.cuda.reset_peak_memory_stats()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            total = objective(subtitled, clean, target, weight)["total"]
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    print(f"GPU {torch.cuda.get_device_name()}: ResNet-50 x2 + FPN ({params / 1e6:.1f} M parameters), "
          f"{height}x{width}, batch {args.batch}, bf16: {args.batch * args.steps / elapsed:.1f} samples/s, "
          f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="real-size network on the GPU")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--size", default=None, help="HxW")
    parser.add_argument("--pairs", default=None, help="CPU mode: an existing pairs dataset")
    args = parser.parse_args()
    if args.gpu:
        args.steps, args.batch, args.size = args.steps or 30, args.batch or 16, args.size or "480x832"
        gpu_mode(args)
    else:
        args.steps, args.batch, args.size = args.steps or 40, args.batch or 8, args.size or "96x128"
        cpu_mode(args)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
