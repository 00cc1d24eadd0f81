"""`clear-ray bench make DIR` builds the benchmark set; `clear-ray bench run DIR` scores a backend.

Only the standard library at module level: the evaluation package (numpy, PIL, cv2, av)
is imported inside ``run``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from clear_ray.commands.errors import CommandError

BACKENDS = ("auto", "clear", "lite", "identity")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="bench_action", metavar="ACTION")
    make = actions.add_parser("make", help="build a reproducible benchmark set under DIR",
                              description="Burn real multilingual subtitles into real footage: "
                                          "subtitled + clean videos, exact alpha/mask, manifest.json.")
    make.add_argument("dir", metavar="DIR", type=Path)
    make.add_argument("--split", choices=("dev", "test", "both"), default="both")
    make.add_argument("--seed", type=int, default=0, help="same seed, same files (default 0)")
    make.add_argument("--clips", type=int, default=12, help="clips per split (default 12)")
    make.add_argument("--size", metavar="WxH", help="one frame size for every clip (default: 240p-720p mix)")
    make.add_argument("--seconds", metavar="MIN-MAX", default="2-10", help="clip durations (default 2-10)")
    make.add_argument("--crf", type=int, default=None, help="x264 CRF of both videos of a pair (default 14)")

    run = actions.add_parser("run", help="score a backend on DIR (plus input and oracle reference rows)",
                             description="Run the real pipeline on a benchmark split and print one table "
                                         "(per language and overall); also writes JSON and CSV.")
    run.add_argument("dir", metavar="DIR", type=Path)
    run.add_argument("--backend", choices=BACKENDS, required=True)
    run.add_argument("--split", choices=("dev", "test"), default="test")
    run.add_argument("--out", type=Path, help="JSON report path (CSV next to it); default DIR/results/SPLIT-BACKEND.json")
    run.add_argument("--config", type=Path, metavar="FILE",
                     help="a `clear-ray remove` YAML for the job (CLEAR model paths, Ray address, ...)")
    run.add_argument("--address", metavar="ADDR",
                     help="Ray cluster for the job and the scoring tasks (default: the --config's, RAY_ADDRESS, "
                          "or a local one); DIR must be on a filesystem every node mounts at the same path")
    run.add_argument("--serial", action="store_true", help="score clips one after another in this process "
                                                           "(default: one Ray task per clip)")
    run.add_argument("--no-cache", action="store_true",
                     help="recompute the input and oracle rows instead of reading DIR/cache/reference-rows.json")
    weights = run.add_argument_group("learned metrics (local files only; without them the column is n/a)")
    weights.add_argument("--lpips-weights", type=Path, metavar="FILE",
                         help="torchvision AlexNet state dict (alexnet-owt-7be5be79.pth) for LPIPS v0.1")
    weights.add_argument("--dists-weights", type=Path, metavar="FILE",
                         help="DISTS alpha/beta file (weights.pt of DISTS_pytorch); needs --vgg16-weights")
    weights.add_argument("--vgg16-weights", type=Path, metavar="FILE",
                         help="torchvision VGG16 state dict (vgg16-397923af.pth), the DISTS backbone")
    weights.add_argument("--vfid-weights", type=Path, metavar="FILE",
                         help="video network for VFID: a TorchScript module (N,3,T,H,W in [0,1] -> N,D) or a "
                              "pytorch-i3d InceptionI3d state dict (rgb_imagenet.pt)")
    weights.add_argument("--perceptual-stride", type=int, default=1, metavar="N",
                         help="LPIPS and DISTS on every Nth frame (default 1: every frame)")


def run(args: argparse.Namespace) -> int:
    if args.bench_action == "make":
        return _make(args)
    if args.bench_action == "run":
        return _run(args)
    raise CommandError("choose an action: `clear-ray bench make DIR` or `clear-ray bench run DIR --backend X`",
                       exit_code=2)


def _make(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from clear_ray.evaluation.benchset import BenchSetConfig, make_benchmark_set
    from clear_ray.synth.fonts import FontMissing
    from clear_ray.synth.texts import TextSourceMissing

    settings: dict = {"splits": ("dev", "test") if args.split == "both" else (args.split,),
                      "seed": args.seed, "clips_per_split": args.clips}
    if args.size:
        settings["size"] = _parse_pair(args.size, "x", "--size", int)
    settings["min_seconds"], settings["max_seconds"] = _parse_pair(args.seconds, "-", "--seconds", float)
    if args.crf is not None:
        settings["crf"] = args.crf
    try:
        config = BenchSetConfig(**settings)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise CommandError(f"{where}: {first['msg'].removeprefix('Value error, ')}", exit_code=2) from None
    started = time.perf_counter()
    print(f"building {'+'.join(config.splits)} ({config.clips_per_split} clips each, seed {config.seed}) in {args.dir}")
    try:
        manifest = make_benchmark_set(args.dir, config)
    except (FontMissing, TextSourceMissing) as error:
        raise CommandError(str(error)) from None
    languages = sorted({c["language"] for c in manifest["clips"] if c["language"]})
    print(f"{len(manifest['clips'])} clips ({', '.join(languages)}; "
          f"{sum(not c['language'] for c in manifest['clips'])} without text) in "
          f"{time.perf_counter() - started:.1f} s -> {Path(args.dir) / 'manifest.json'}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from clear_ray.evaluation.bench import bench_json_default, run_bench, write_report
    from clear_ray.evaluation.perceptual import PerceptualConfig, WeightsError

    try:
        perceptual = PerceptualConfig(lpips_weights=args.lpips_weights, dists_weights=args.dists_weights,
                                      vgg16_weights=args.vgg16_weights, vfid_weights=args.vfid_weights,
                                      frame_stride=args.perceptual_stride)
    except ValidationError as error:
        first = error.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["loc"]:  # a field's own check (frame_stride is --perceptual-stride)
            flag = {"frame_stride": "perceptual_stride"}.get(str(first["loc"][0]), str(first["loc"][0]))
            message = f"--{flag.replace('_', '-')}: {message}"
        raise CommandError(message, exit_code=2) from None
    if not (args.dir / "manifest.json").is_file():
        raise CommandError(f"{args.dir} has no manifest.json: build the set first (clear-ray bench make {args.dir})")
    started = time.perf_counter()
    try:
        report = run_bench(args.dir, args.backend, args.split, perceptual=perceptual, job_config=args.config,
                           serial=args.serial, use_cache=not args.no_cache, address=args.address)
    except WeightsError as error:
        raise CommandError(f"weights: {error}", exit_code=2) from None
    except (ValueError, FileNotFoundError) as error:
        raise CommandError(str(error)) from None
    print(report.table())
    print()
    print(report.comparison())
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    json_path, csv_path = write_report(report, args.out or bench_json_default(args.dir, args.split, args.backend))
    print(f"reference rows: {report.reference_computed} clips computed, {report.reference_cached} from the cache; "
          f"backend {report.seconds.get('backend', 0):.1f} s, scoring {report.seconds.get('scoring', 0):.1f} s")
    print(f"wrote {json_path} and {csv_path} ({time.perf_counter() - started:.1f} s)")
    if not report.backend_scored:
        print(f"clear-ray bench: backend {args.backend} produced no scored clip", file=sys.stderr)
        return 1
    return 0


def _parse_pair(text: str, separator: str, flag: str, kind):
    parts = text.lower().split(separator)
    try:
        if len(parts) != 2:
            raise ValueError
        return kind(parts[0]), kind(parts[1])
    except ValueError:
        raise CommandError(f"{flag}: expected A{separator}B, got {text!r}", exit_code=2) from None
