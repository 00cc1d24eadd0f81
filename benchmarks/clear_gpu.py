"""Seconds per frame of one CLEAR chunk on one CUDA GPU, real-size models with random weights.

Builds the real-size Wan2.1-Fun-V1.1-1.3B-Control DiT (with a random rank-64 LoRA on
CLEAR's targets fused in, as ClearRemover does), the Wan2.1 VAE and the umt5-xxl text
encoder with random weights directly on the GPU, then runs one 81-frame 480x832 chunk at
5 steps in one process:

  ours           ClearDenoiser, what ClearRemover runs per chunk (prompt encoded beforehand)
  ours untiled   the same with the VAE untiled (ClearConfig.tiled_vae = false)
  stock          WanVideoPipeline.__call__ on the same pipe and chunk (what CLEAR's inference.py
                 calls per chunk; it re-encodes the prompt every time)
  CLEAR as released (--peft)   stock __call__ with the LoRA injected unfused through PEFT
  remover        ClearRemover.remove on the same pipe: everything an actor does per window
                 after load (fast path: fastest exact attention kernel, float32 RoPE, VAE
                 tiling by free memory; upload, resize, uint8 and the difference mask incl.
                 the reconstruction decode, on the GPU: phases frames_in / frames_out)

and prints the VAE encode / DiT / VAE decode split, seconds per frame, stock / ours, and
for the remover seconds per *new* output frame: a window of 81 frames with 16 of overlap
adds 65 frames to a video, so that is what a window costs per frame of output (goal
<= 0.12 s). The attention kernel the remover uses is printed.
With --windowing latent every variant runs CLEAR's latent sliding windows (DiffSynth's
temporal tiler, --latent-window / --latent-stride latent frames) over the whole chunk, as
``clear.windowing: latent`` does: pass a chunk longer than a window (e.g. --frames 161).
Every variant runs once to warm up (kernels, allocator, cuDNN, compilation) before it is
timed. Random weights cost the same time as real ones; the output is only checked to be
the same for ours and stock (max |difference| printed).

    python benchmarks/clear_gpu.py [--frames 81] [--height 480] [--width 832] [--steps 5]
                                   [--repeats 2] [--overlap 16] [--compile] [--cudnn-benchmark] [--peft]
                                   [--windowing latent --latent-window 21 --latent-stride 19]
    python benchmarks/clear_gpu.py --height 720 --width 1280      # 720p

Exits with status 2 and one line on a machine without CUDA.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clear_ray.models.files import FUN_CONTROL_V11_1P3B_DIT, UMT5_XXL_ENCODER, WAN21_VAE  # noqa: E402

PROMPT = ("Please remove the subtitle text from the video while preserving the character appearance, "
          "background composition, and color style. Do not add any new elements.")
LORA_RANK = 64  # the released CLEAR checkpoint's rank


class HashTokenizer:
    """Stands in for the umt5-xxl tokenizer (no files here): word ids by hash, padded to
    512 tokens like DiffSynth's HuggingfaceTokenizer(seq_len=512). Tokenising costs
    microseconds either way."""

    def __init__(self, vocab: int, length: int = 512):
        self.vocab, self.length = vocab, length

    def __call__(self, prompt: str, return_mask: bool = False, add_special_tokens: bool = True):
        import torch

        ids = [3 + zlib.crc32(word.encode()) % (self.vocab - 3) for word in prompt.split()][: self.length - 1] + [1]
        ids_1l = torch.zeros(1, self.length, dtype=torch.long)
        ids_1l[0, : len(ids)] = torch.tensor(ids)
        mask_1l = (torch.arange(self.length) < len(ids)).long()[None]
        return (ids_1l, mask_1l) if return_mask else ids_1l


def build_pipeline(device: str, dtype: Any, dit_kwargs: dict, vae_kwargs: dict, text_encoder_kwargs: dict,
                   seed: int = 0):
    """Random-weight components, created on ``device`` (no host copy of 6 GB of weights),
    assembled as ClearRemover assembles them. Returns (pipe, base DiT state for --peft)."""
    import torch

    from clear_ray.models.wan import assemble_pipeline, model_class
    from clear_ray.models.lora import LoraWeights, clear_target_layers, fuse_lora

    torch.manual_seed(seed)
    with torch.device(device):
        dit = model_class("dit")(**dit_kwargs).to(dtype).eval().requires_grad_(False)
        vae = model_class("vae")(**vae_kwargs).to(dtype).eval().requires_grad_(False)
        text_encoder = model_class("text_encoder")(**text_encoder_kwargs).to(dtype).eval().requires_grad_(False)
        base_state = {k: v.clone() for k, v in dit.state_dict().items()}
        factors = {name: (torch.randn(LORA_RANK, layer.in_features) * 0.01,
                          torch.randn(layer.out_features, LORA_RANK) * 0.01)
                   for name, layer in clear_target_layers(dit).items()}
    fuse_lora(dit, LoraWeights(path=Path("<random>"), factors=factors), strength=1.0)
    tokenizer = HashTokenizer(text_encoder.token_embedding.num_embeddings)
    pipe = assemble_pipeline(device, dtype, dit=dit, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer)
    return pipe, base_state, factors


def synthetic_chunk(frames: int, height: int, width: int):
    """A moving gradient with a white subtitle bar (content does not change the timing)."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    chunk = np.stack([np.roll(base, 4 * t, axis=1) for t in range(frames)])
    chunk[:, int(height * 0.82):int(height * 0.9), width // 5: 4 * width // 5] = 245
    return chunk


def _timed(device: str, run) -> tuple[Any, float]:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


def measure(device: str, dtype: Any, *, frames: int = 81, height: int = 480, width: int = 832, steps: int = 5,
            repeats: int = 2, warmups: int = 1, compile_dit: bool = False, peft_reference: bool = False,
            sliding_window: tuple[int, int] | None = None,
            dit_kwargs: dict = FUN_CONTROL_V11_1P3B_DIT, vae_kwargs: dict = WAN21_VAE,
            text_encoder_kwargs: dict = UMT5_XXL_ENCODER) -> dict[str, Any]:
    """Every number the report prints, measured in this process."""
    import torch
    from PIL import Image

    from clear_ray.models.denoise import ClearDenoiser
    from clear_ray.models.wan import encode_prompt

    pipe, base_state, factors = build_pipeline(device, dtype, dit_kwargs, vae_kwargs, text_encoder_kwargs)
    chunk = synthetic_chunk(frames, height, width)
    context, prompt_s = _timed(device, lambda: encode_prompt(pipe, PROMPT))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()  # not the fp32 construction of the random weights
    if compile_dit:
        pipe.compile_pipeline(mode="default", dynamic=True)
    results: dict[str, Any] = {"prompt_s": prompt_s, "sliding_window": sliding_window}

    for name, tiled in (("ours", True), ("ours_untiled", False)):
        denoiser = ClearDenoiser(pipe, context, None, steps=steps, cfg=1.0, shift=5.0, seed=0, tiled=tiled,
                                 sliding_window=sliding_window)
        for _ in range(warmups):
            denoiser(chunk)
        runs = [denoiser(chunk) for _ in range(repeats)]
        results[name] = {phase: statistics.median(r[1][phase] for r in runs) for phase in runs[0][1]}
        results[name]["total"] = sum(results[name].values())
        results[f"{name}_video"] = runs[-1][0]

    control_video = [Image.fromarray(frame) for frame in chunk]

    def stock_call():
        return pipe(prompt=PROMPT, control_video=control_video, seed=0, height=height, width=width, num_frames=frames,
                    cfg_scale=1.0, num_inference_steps=steps, sigma_shift=5.0, tiled=True, output_type="floatpoint",
                    progress_bar_cmd=lambda timesteps: timesteps,
                    sliding_window_size=sliding_window[0] if sliding_window else None,
                    sliding_window_stride=sliding_window[1] if sliding_window else None)

    for _ in range(warmups):
        stock_call()  # the text encoder's kernels
    stock_runs = [_timed(device, stock_call) for _ in range(repeats)]
    results["stock_total"] = statistics.median(seconds for _, seconds in stock_runs)
    results["max_abs_diff"] = float((results["ours_video"].float() - stock_runs[-1][0].float()).abs().max())
    results["finite"] = bool(torch.isfinite(results["ours_video"]).all())

    if peft_reference:
        results["peft_total"] = _measure_peft(pipe, base_state, factors, dit_kwargs, device, dtype, stock_call,
                                              repeats, warmups)
    if device.startswith("cuda"):
        results["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    # Last: the remover frees the text encoder and swaps in the float32 RoPE for good.
    results.update(_measure_remover(pipe, chunk, device, steps, repeats, warmups, compile_dit, sliding_window))
    return results


def _measure_remover(pipe, chunk, device: str, steps: int, repeats: int, warmups: int, compile_dit: bool,
                     sliding_window: tuple[int, int] | None = None) -> dict:
    """ClearRemover.remove per window, everything after load included, and its peak memory."""
    import torch

    from clear_ray.config import RemoverConfig
    from clear_ray.removers.clear import ClearRemover

    windowing = ({"windowing": "latent", "latent_window": sliding_window[0], "latent_stride": sliding_window[1]}
                 if sliding_window else {})
    config = RemoverConfig(backend="clear", clear={"steps": steps, "compile": compile_dit, **windowing})
    remover = ClearRemover.from_pipeline(config, pipe, device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmups):
        remover.remove(chunk)
    seconds = statistics.median(_timed(device, lambda: remover.remove(chunk))[1] for _ in range(repeats))
    out = {"remover_total": seconds, "remover_runtime": remover.runtime, "remover_phases": dict(remover.last_timings)}
    if device.startswith("cuda"):
        out["remover_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def _measure_peft(pipe, base_state, factors, dit_kwargs, device, dtype, stock_call, repeats, warmups) -> float:
    """CLEAR's inference.py as released: base DiT + PEFT-injected (unfused) LoRA, alpha = rank."""
    import torch
    from peft import LoraConfig, inject_adapter_in_model

    from clear_ray.models.wan import model_class
    from clear_ray.models.lora import CLEAR_TARGETS

    fused = pipe.dit
    with torch.device(device):
        dit = model_class("dit")(**dit_kwargs).to(dtype).eval().requires_grad_(False)
    dit.load_state_dict(base_state)
    config = LoraConfig(r=LORA_RANK, lora_alpha=LORA_RANK, target_modules=list(CLEAR_TARGETS), lora_dropout=0.0,
                        bias="none")
    dit = inject_adapter_in_model(config, dit)
    lora = {f"{name}.lora_{which}.default.weight": tensor.to(dtype)
            for name, (down, up) in factors.items() for which, tensor in (("A", down), ("B", up))}
    dit.load_state_dict(lora, strict=False)
    pipe.dit = dit
    try:
        for _ in range(warmups):
            stock_call()
        return statistics.median(_timed(device, stock_call)[1] for _ in range(repeats))
    finally:
        pipe.dit = fused


def report(results: dict[str, Any], frames: int, height: int, width: int, steps: int, device_name: str,
           dtype_name: str, overlap: int = 16) -> str:
    per_frame = lambda seconds: seconds / frames  # noqa: E731
    ours, untiled, stock = results["ours"], results["ours_untiled"], results["stock_total"]
    window = results.get("sliding_window")
    windowing = f"latent windows {window[0]}/{window[1]}" if window else "one window"
    lines = [f"CLEAR chunk: {frames} frames {width}x{height}, {steps} steps, cfg 1.0, {dtype_name} on {device_name}, "
             f"{windowing}",
             f"{'':28}{'tiled VAE':>20}{'untiled VAE':>22}",
             f"{'':28}{'s':>9}{'s/frame':>11}{'s':>11}{'s/frame':>11}"]
    for phase, label in (("vae_encode", "VAE encode"), ("dit", f"DiT ({steps} steps)"), ("vae_decode", "VAE decode"),
                         ("total", "ours, total")):
        lines.append(f"  {label:26}{ours[phase]:9.2f}{per_frame(ours[phase]):11.3f}"
                     f"{untiled[phase]:11.2f}{per_frame(untiled[phase]):11.3f}")
    lines.append(f"  {'stock WanVideoPipeline':26}{stock:9.2f}{per_frame(stock):11.3f}")
    lines.append(f"  stock / ours: {stock / ours['total']:.2f}x (tiled), {stock / untiled['total']:.2f}x (untiled)")
    if "peft_total" in results:
        peft = results["peft_total"]
        lines.append(f"  CLEAR as released (PEFT LoRA): {peft:.2f} s = {per_frame(peft):.3f} s/frame; "
                     f"/ ours: {peft / ours['total']:.2f}x")
    new_frames = frames - overlap
    remover_s = results["remover_total"]
    per_new_frame = remover_s / new_frames
    lines.append(f"  remover (all after load): {remover_s:.2f} s per window, {per_new_frame:.3f} s per new output "
                 f"frame ({new_frames} new of {frames}); phases "
                 + ", ".join(f"{k} {v:.2f}" for k, v in results["remover_phases"].items()))
    lines.append(f"  remover runtime: {results['remover_runtime']}")
    if "remover_peak_gib" in results:
        lines.append(f"  remover peak GPU memory: {results['remover_peak_gib']:.1f} GiB")
    verdict = "met" if per_new_frame <= 0.12 else "NOT met"
    lines.append(f"  goal <= 0.12 s per new output frame: {verdict} ({per_new_frame:.3f})")
    lines.append(f"  prompt encoding, once per actor: {results['prompt_s']:.2f} s")
    lines.append(f"  max |ours - stock| (decoded, [-1, 1]): {results['max_abs_diff']:.3g}; "
                 f"finite output: {results['finite']}")
    if "peak_gib" in results:
        lines.append(f"  peak GPU memory: {results['peak_gib']:.1f} GiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per variant after one warm-up")
    parser.add_argument("--overlap", type=int, default=16, help="frames shared with the next window (the job's)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the DiT blocks (ClearConfig.compile)")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN pick conv algorithms by timing")
    parser.add_argument("--peft", action="store_true", help="also time CLEAR as released (PEFT, unfused LoRA)")
    parser.add_argument("--windowing", choices=("pixel", "latent"), default="pixel",
                        help="latent: CLEAR's latent sliding windows inside the chunk (clear.windowing)")
    parser.add_argument("--latent-window", type=int, default=21, help="latent frames per window (windowing latent)")
    parser.add_argument("--latent-stride", type=int, default=19, help="latent frames between windows")
    args = parser.parse_args(argv)
    if (args.frames - 1) % 4 or args.height % 16 or args.width % 16:
        parser.error("frames must be 4n+1 and height/width multiples of 16")

    import torch

    if not torch.cuda.is_available():
        print("clear_gpu.py: needs a CUDA GPU (torch.cuda.is_available() is False); nothing was measured",
              file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    results = measure("cuda", torch.bfloat16, frames=args.frames, height=args.height, width=args.width,
                      steps=args.steps, repeats=args.repeats, compile_dit=args.compile, peft_reference=args.peft,
                      sliding_window=((args.latent_window, args.latent_stride) if args.windowing == "latent"
                                      else None))
    print(report(results, args.frames, args.height, args.width, args.steps, torch.cuda.get_device_name(),
                 "bfloat16", overlap=args.overlap))
    return 0


if __name__ == "__main__":
    sys.exit(main())
