"""Stage II training step at the real size on one GPU: step time, samples/s, peak memory.

    python benchmarks/train_stage2_gpu.py [--steps 5] [--frames 81] [--height 480] [--width 832]

The Wan2.1-Fun-V1.1-1.3B-Control DiT (random weights, bf16, frozen) with the rank-64 LoRA
(fp32) on all 300 CLEAR targets and the occlusion head, the paper's objective, AdamW,
bf16 autocast: one window per step (CLEAR's micro-batch), with and without gradient
checkpointing. Latents, control and text context are random tensors of the real shapes
(480x832x81 -> 16 x 21 x 60 x 104 latents, 512 x 4096 context), so VAE and T5 time is not
in it (the latent cache takes them out of training). Refuses to run without CUDA.
"""

from __future__ import annotations

import argparse
import sys
import time


def build(device, dit_kwargs: dict | None = None, dtype=None):
    import torch
    from diffsynth.models.wan_video_dit import WanModel

    from clear_ray.models.files import FUN_CONTROL_V11_1P3B_DIT
    from clear_ray.training.stage2.config import Stage2Config
    from clear_ray.training.stage2.engine import Stage2Module
    from clear_ray.training.stage2.losses import Stage2Objective
    from clear_ray.training.stage2.model import build_stage2_model, parameter_counts

    torch.manual_seed(0)
    with torch.device(device):
        dit = WanModel(**(dit_kwargs or FUN_CONTROL_V11_1P3B_DIT)).to(dtype or torch.bfloat16)
    config = Stage2Config(pairs="-", model_dir=".", output="-")  # defaults: r64, alpha 64, head, paper
    model = build_stage2_model(dit, config, device=device)
    module = Stage2Module(model, Stage2Objective("paper")).to(device)
    return module, parameter_counts(model)


def measure(module, *, frames: int, height: int, width: int, steps: int, checkpointing: bool, device) -> dict:
    import torch

    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32  # the CPU path only checks the code runs
    text_dim = module.model.dit.text_embedding[0].in_features
    latent_t, latent_h, latent_w = (frames - 1) // 4 + 1, height // 8, width // 8
    shape = (1, 16, latent_t, latent_h, latent_w)
    clean, noise = torch.randn(shape, device=device), torch.randn(shape, device=device)
    control = {"y": torch.randn((1, 32, latent_t, latent_h, latent_w), device=device, dtype=dtype),
               "clip_feature": torch.zeros((1, 257, 1280), device=device, dtype=dtype)}
    context = torch.randn((1, 512, text_dim), device=device, dtype=dtype)
    prior = (torch.rand((1, 1, latent_t, latent_h, latent_w), device=device) > 0.9).float()
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    sigma = torch.tensor([0.6], device=device)
    noisy = ((1 - sigma) * clean + sigma * noise).to(dtype)
    timestep = torch.tensor([600.0], device=device, dtype=dtype)

    def step(k: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss, _ = module(noisy, timestep, context, control, gradient_checkpointing=checkpointing,
                             target=noise - clean, prior=prior, step=k, sigma=sigma, clean=clean)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    module.train()
    try:
        step(0)  # warm-up: allocator, kernels, optimizer state
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        for k in range(1, steps + 1):
            step(k)
        if cuda:
            torch.cuda.synchronize()
    except torch.cuda.OutOfMemoryError:
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        return {"checkpointing": checkpointing, "error": "out of memory"}
    seconds = (time.perf_counter() - started) / steps
    result = {"checkpointing": checkpointing, "step_s": seconds, "samples_per_s": 1.0 / seconds,
              "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")}
    del optimizer
    if cuda:
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("train_stage2_gpu: needs a CUDA device (the real-size step does not fit a CPU run)", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    module, counts = build(device)
    print(f"{torch.cuda.get_device_name()}: Wan2.1-Fun 1.3B DiT bf16 frozen ({counts['frozen']:,} params), "
          f"LoRA r64 {counts['lora']:,} + head {counts['head']:,} fp32; {args.width}x{args.height}x{args.frames}")
    results = [measure(module, frames=args.frames, height=args.height, width=args.width, steps=args.steps,
                       checkpointing=checkpointing, device=device) for checkpointing in (True, False)]
    for result in results:
        label = "with" if result["checkpointing"] else "without"
        if "error" in result:
            print(f"  {label:>7} gradient checkpointing: {result['error']}")
        else:
            print(f"  {label:>7} gradient checkpointing: {result['step_s']:.2f} s/step, "
                  f"{result['samples_per_s']:.3f} windows/s, peak {result['peak_gib']:.1f} GiB")
    if all("error" not in r for r in results):
        print(f"  checkpointing costs x{results[0]['step_s'] / results[1]['step_s']:.2f} time, "
              f"saves x{results[1]['peak_gib'] / results[0]['peak_gib']:.1f} memory")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
