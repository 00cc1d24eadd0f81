"""Start-up cost of `clear-ray remove` as the manifest grows: 10 successive runs over the
same 1,000 inputs (manifest rows only: no video is decoded, every "output" is a tiny file).

Each run does exactly the job's start-up (`clear_ray.pipeline.job.startup_decisions`): list SRC, read the
manifest, list DST (the three at once), decide every input; then records its rows as the job does (run 1: one
row per processed input; later runs: every input skipped, one file) and folds them into the
manifest state. Printed: each run's start-up seconds and the 10th run's as a ratio to the
1st's (goal <= 1.5: cost per run follows the inputs, not the number of earlier runs).

    python benchmarks/manifest_startup.py            # on a local SeaweedFS S3 server
    python benchmarks/manifest_startup.py --local    # on a temp directory
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_once(config, run_index: int) -> tuple[float, int, int]:
    from clear_ray import storage
    from clear_ray.config import config_fingerprint
    from clear_ray.manifest import Manifest, ManifestRow
    from clear_ray.pipeline.job import OUTPUT_SETTINGS, startup_decisions

    options = config.storage.s3_storage_options()
    config_fp = config_fingerprint(config, include=OUTPUT_SETTINGS)
    manifest = Manifest(config.dst, f"bench-{run_index:02d}", storage_options=options)
    # Start-up reads only: measured 3 times, the fastest kept (the machine is shared).
    startup_s = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        _, to_process, decided = startup_decisions(config, manifest, "identity-bench", config_fp)
        startup_s = min(startup_s, time.perf_counter() - started)

    # The run's "work" (not timed): an output and a done row per processed input, written
    # in bulk here (the job writes each as its input finishes); skipped rows in one file.
    manifest.record_many(decided)
    if to_process:
        fs, _ = storage.filesystem(config.dst, options)
        outputs = {fs._strip_protocol(p.output_uri): b"out" for p in to_process.values()}
        if storage.is_remote(config.dst):
            fs.pipe(outputs)
        else:
            for path, data in outputs.items():
                storage.write_bytes_atomic(path, data)
        manifest.record_many([ManifestRow(
            run_id=manifest.run_id, finished_at=time.time(), input_uri=p.video.uri, rel_path=p.video.rel_path,
            input_fingerprint=p.video.fingerprint, model_fingerprint="identity-bench", config_fingerprint=config_fp,
            status="done", backend="identity", output_uri=p.output_uri) for p in to_process.values()])
    manifest.finalize()
    return startup_s, len(to_process), len(decided)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--local", action="store_true", help="a temp directory instead of a local S3 server")
    args = parser.parse_args()

    from clear_ray.config import RemoveJobConfig, load_config

    server = None
    scratch = tempfile.mkdtemp(prefix="cr-manifest-bench-")
    try:
        if args.local:
            src, dst, settings = f"{scratch}/src", f"{scratch}/dst", {}
            Path(src).mkdir()
            for i in range(args.inputs):
                (Path(src) / f"v{i:05d}.mp4").write_bytes(b"x")
        else:
            from clear_ray.testing.s3_server import SeaweedS3

            server = SeaweedS3().start()
            fs = server.filesystem()
            fs.mkdir("bench")
            fs.pipe({f"bench/src/v{i:05d}.mp4": b"x" for i in range(args.inputs)})
            src, dst = "s3://bench/src", "s3://bench/dst"
            settings = {"storage.endpoint_url": server.endpoint_url, "storage.access_key_id": server.access_key,
                        "storage.secret_access_key": server.secret_key, "storage.region": "us-east-1"}
        config = load_config(RemoveJobConfig, overrides={"src": src, "dst": dst, "remover.backend": "identity",
                                                         **settings}, env={})
        times = []
        for run in range(1, args.runs + 1):
            startup_s, processed, decided = run_once(config, run)
            times.append(startup_s)
            print(f"run {run:2d}: start-up {startup_s:6.3f} s  (processed {processed}, skipped {decided})", flush=True)
        where = "local directory" if args.local else "SeaweedFS S3"
        print(f"{args.inputs} inputs on {where}: run {args.runs} start-up / run 1 start-up = "
              f"{times[-1] / times[0]:.2f} (goal <= 1.5)")
        # Run 1 starts from an empty DST; from run 2 on the manifest holds every input, so
        # this ratio isolates growth with the number of earlier runs.
        print(f"run {args.runs} / run 2 (the first with a full manifest) = {times[-1] / times[1]:.2f}")
    finally:
        if server is not None:
            server.stop()
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
