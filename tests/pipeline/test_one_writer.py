"""One writer per DST and faults a run must survive, with the real Ray cluster and the real
S3 server (SeaweedFS): overlapping runs, a killed run's lease, drivers killed while
planning, and an S3 outage in the middle of a run."""

import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from clear_ray.chunking import plan_chunks
from clear_ray.lease import EXIT_LEASE_HELD, read_holder
from clear_ray.manifest import read_manifest_table
from clear_ray.pipeline import run_remove_job
from tests.pipeline.helpers import SEGMENT_FRAMES, job_config, stream_signature

SPECS = {"a.mp4": dict(frames=25), "b.mp4": dict(frames=21, width=80), "c.mkv": dict(frames=17, fps="30000/1001")}
# The same settings as tests.pipeline.helpers.job_config (they are part of the resume key).
JOB_FLAGS = ["--backend", "identity", "--chunk-size", "9", "--chunk-overlap", "2", "--preset", "ultrafast",
             "--max-actors", "1", "--quiet"]


def _counting_env(calls: Path, sleep_s: float, **extra) -> dict:
    return dict(os.environ, CLEAR_RAY_REMOVER__PLUGIN="clear_ray.testing.removers:CountingRemover",
                CLEAR_RAY_CHUNKING__SEGMENT_FRAMES=str(SEGMENT_FRAMES),
                CLEAR_RAY_REMOVER__PLUGIN_OPTIONS=f'{{"calls_file": "{calls}", "sleep_s": {sleep_s}}}', **extra)


def _s3_env(server) -> dict:
    # Through the job's config, so that the session cluster's workers get them too.
    return {"CLEAR_RAY_STORAGE__ENDPOINT_URL": server.endpoint_url, "CLEAR_RAY_STORAGE__REGION": "us-east-1",
            "CLEAR_RAY_STORAGE__ACCESS_KEY_ID": server.access_key,
            "CLEAR_RAY_STORAGE__SECRET_ACCESS_KEY": server.secret_key}


def _s3_config(server, src, dst, calls, sleep_s=0.0, **overrides):
    return job_config(src, dst, **{
        "storage.endpoint_url": server.endpoint_url, "storage.access_key_id": server.access_key,
        "storage.secret_access_key": server.secret_key, "storage.region": "us-east-1",
        "remover.plugin": "clear_ray.testing.removers:CountingRemover",
        "remover.plugin_options": {"calls_file": str(calls), "sleep_s": sleep_s}, **overrides})


def _upload_clips(fs, make_clip, prefix: str) -> None:
    for name, spec in SPECS.items():
        fs.put_file(str(make_clip(name, **spec)), f"{prefix}/{name}")


def _chunk_calls(calls: Path) -> Counter:
    return Counter(line.split()[0] for line in calls.read_text().splitlines()) if calls.exists() else Counter()


def _expected_chunks() -> int:
    return sum(len(plan_chunks(spec["frames"], 9, 2)) for spec in SPECS.values())


def _assert_outputs_exact(fs, src: str, dst: str) -> None:
    # The job wrote through other clients: a listing this client cached earlier (say, of DST
    # after a first run that failed a video) would hide what the job wrote since.
    fs.invalidate_cache()
    for name in SPECS:
        with fs.open(f"{src}/{name}", "rb") as source, fs.open(f"{dst}/{name}", "rb") as output:
            assert stream_signature(output) == stream_signature(source), name
    names = fs.find(dst)
    assert not [n for n in names if ".part" in n or n.endswith(".tmp")], names


@pytest.mark.slow
def test_overlapping_runs_on_one_dst(ray_cluster, s3_server, s3_bucket, make_clip, tmp_path):
    import ray

    fs = s3_server.filesystem()
    src, dst = f"{s3_bucket}/src", f"{s3_bucket}/dst"
    _upload_clips(fs, make_clip, src)
    calls = tmp_path / "calls.log"
    env = _counting_env(calls, 0.4, **_s3_env(s3_server))
    command = ["clear-ray", "remove", src, dst, *JOB_FLAGS, "--address", ray.get_runtime_context().gcs_address]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    options = s3_server.storage_options()
    deadline = time.monotonic() + 120
    while read_holder(dst, options) is None and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    holder = read_holder(dst, options)
    assert holder is not None, first.communicate()[0].decode()[-3000:]

    # A second run finds DST held: exit 3, one line naming the holder, nothing written.
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == EXIT_LEASE_HELD, second.stdout + second.stderr
    [line] = second.stderr.strip().splitlines()
    assert f"run {holder.run_id} on host {holder.host}, pid {holder.pid}, since" in line
    # A third one waits for the first to finish, then finds everything done.
    third = subprocess.Popen([*command, "--wait-for-lease", "--lease-wait-timeout", "300"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out_first = first.communicate(timeout=300)[0].decode()
    assert first.returncode == 0, out_first[-3000:]
    out_third = third.communicate(timeout=300)[0]
    assert third.returncode == 0, out_third[-3000:]
    assert re.search(r"^\s*skipped\s+3$", out_third, re.MULTILINE), out_third[-3000:]

    chunk_calls = _chunk_calls(calls)
    assert max(chunk_calls.values()) == 1, "a chunk was computed twice"
    assert len(chunk_calls) == _expected_chunks()
    _assert_outputs_exact(fs, src, dst)
    table = read_manifest_table(dst, storage_options=options)
    statuses = Counter(zip(table.column("run_id").to_pylist(), table.column("status").to_pylist()))
    assert sorted(statuses.values()) == [3, 3] and {s for _, s in statuses} == {"done", "skipped"}
    assert read_holder(dst, options) is None  # released by the run that finished last


def _session_pids(session_id: int) -> list[int]:
    ps = subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid, sid in zip(ps[::2], ps[1::2]) if int(sid) == session_id]


def _plan_markers(dst: Path) -> set[Path]:
    return set(dst.glob("_staging/*/*/attempts/plan.*"))


def _kill_while_planning(command: list[str], env: dict, dst: Path) -> set[Path]:
    """Start a job with its own local Ray cluster; once it is planning the input (a new plan
    attempt marker), kill the job's whole session (driver, raylet and workers), as a
    pre-empted node would be. Returns the plan markers this run left behind."""
    before = _plan_markers(dst)
    job = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while not (_plan_markers(dst) - before) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    for pid in _session_pids(job.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    output = job.communicate(timeout=60)[0].decode()
    assert job.returncode == -signal.SIGKILL, output[-3000:]
    return _plan_markers(dst) - before


@pytest.mark.slow
def test_drivers_killed_while_planning_quarantine_nothing_and_leases_are_taken_over(ray_cluster, make_clip, tmp_path):
    # One input, so that both killed runs die while planning the same item: before runs
    # discarded earlier runs' markers, its two markers made it "poison" (2 worker deaths).
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    make_clip("a.mp4", **SPECS["a.mp4"]).rename(src / "a.mp4")
    calls = tmp_path / "calls.log"
    # Each killed run starts (and loses) its own local cluster: no --address, no RAY_ADDRESS.
    env = _counting_env(calls, 0.0, RAY_TMPDIR=tempfile.mkdtemp(prefix="crk-", dir="/tmp"))
    env.pop("RAY_ADDRESS", None)
    command = ["clear-ray", "remove", str(src), str(dst), *JOB_FLAGS, "--lease-ttl", "3", "--wait-for-lease"]

    assert _kill_while_planning(command, env, dst), "the killed run left no plan attempt marker"
    # Its lease is still fresh: a run that does not wait exits 3 naming the dead holder.
    held = subprocess.run([c for c in command if c != "--wait-for-lease"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert held.returncode == EXIT_LEASE_HELD and "pid" in held.stderr, held.stdout + held.stderr
    # The next run waits out the 3 s TTL, takes the lease over, and is killed while planning too.
    assert _kill_while_planning(command, env, dst), "the killed run left no plan attempt marker"

    summary = run_remove_job(job_config(str(src), str(dst), wait_for_lease=True, **{
        "remover.plugin": "clear_ray.testing.removers:CountingRemover",
        "remover.plugin_options": {"calls_file": str(calls), "sleep_s": 0.0}}))
    assert {row.rel_path: row.status for row in summary.rows} == {"a.mp4": "done"}
    assert summary.exit_code == 0
    assert stream_signature(str(dst / "a.mp4")) == stream_signature(str(src / "a.mp4"))
    assert read_holder(str(dst)) is None


@pytest.mark.slow
def test_an_s3_outage_mid_run_heals_without_quarantine_or_partial_output(ray_cluster, make_clip, tmp_path):
    from clear_ray.testing.s3_server import SeaweedS3

    calls = tmp_path / "calls.log"
    with SeaweedS3(data_dir=tmp_path / "s3-data") as server:  # its own server: this test stops it
        fs = server.filesystem()
        fs.mkdir("outage")
        src, dst = "s3://outage/src", "s3://outage/dst"
        _upload_clips(fs, make_clip, src)
        outage = {}

        def stop_when_chunks_are_staged() -> None:
            watcher = server.filesystem()
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                watcher.invalidate_cache()
                try:
                    staged = [n for n in watcher.find(f"{dst}/_staging") if "/chunks/" in n]
                except OSError:
                    staged = []
                if staged:
                    break
                time.sleep(0.2)
            outage["start"] = time.monotonic()
            server.stop_keeping_data()
            time.sleep(12)
            server.start()
            outage["seconds"] = time.monotonic() - outage["start"]

        watcher = threading.Thread(target=stop_when_chunks_are_staged, daemon=True)
        watcher.start()
        config = _s3_config(server, src, dst, calls, sleep_s=0.4)
        first = run_remove_job(config)
        first_ended = time.monotonic()
        watcher.join(timeout=120)
        assert outage.get("seconds", 0) >= 10 and outage["start"] < first_ended, "no outage during the run"
        print("first run after an outage of", round(outage["seconds"], 1), "s:",
              {row.rel_path: (row.status, row.error) for row in first.rows})
        fs = server.filesystem()
        statuses = Counter(row.status for row in first.rows)
        assert statuses["quarantined"] == 0
        assert all(row.error_kind in ("storage", "transient") for row in first.rows if row.status == "failed")
        for row in first.rows:  # whatever exists under a final name is complete
            if row.status == "done":
                assert fs.exists(f"{dst}/{row.rel_path}")
        assert not [n for n in fs.find(dst) if ".part" in n or n.endswith(".tmp")]

        second = run_remove_job(config)  # at most one more run finishes everything
        assert {row.rel_path: row.status for row in second.rows if row.status not in ("done", "skipped")} == {}
        assert second.exit_code == 0
        _assert_outputs_exact(fs, src, dst)
        chunk_calls = _chunk_calls(calls)
        assert len(chunk_calls) == _expected_chunks()


@pytest.mark.slow
def test_a_run_that_loses_its_lease_stops_writing_and_exits_4(ray_cluster, make_clip, tmp_path):
    import json

    import ray

    from clear_ray.lease import EXIT_LEASE_LOST, LeaseRecord

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for name, spec in SPECS.items():
        make_clip(name, **spec).rename(src / name)
    env = _counting_env(tmp_path / "calls.log", 1.0)
    command = ["clear-ray", "remove", str(src), str(dst), *JOB_FLAGS, "--lease-ttl", "3",
               "--address", ray.get_runtime_context().gcs_address]
    job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list(dst.glob("_staging/*/*/chunks/*")) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    # Another run takes DST over (as one whose clock ran ahead would): the holder must notice.
    now = time.time()
    thief = LeaseRecord(run_id="thief", host="elsewhere", pid=1, since=now, renewed_at=now, ttl_s=3)
    # Under the lease's lock, as a real taker's compare-and-swap: a bare write could land
    # between the holder's heartbeat reading its lease and replacing it, and be overwritten.
    import fcntl

    with open(dst / "_lease.json.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        (dst / ".thief.tmp").write_bytes(json.dumps(thief.__dict__).encode())
        os.replace(dst / ".thief.tmp", dst / "_lease.json")
    stdout, stderr = job.communicate(timeout=240)
    assert job.returncode == EXIT_LEASE_LOST, stdout[-2000:] + stderr[-3000:]
    ours = [line for line in stderr.splitlines() if line.startswith("clear-ray remove:")]
    assert len(ours) == 1 and ours[0].startswith(
        "clear-ray remove: stopped: another run took the DST lease: now held by run thief on host elsewhere"), stderr
    # It wrote nothing after: no manifest state, the thief's lease untouched.
    assert not (dst / "_manifest" / "state.parquet").exists()
    assert LeaseRecord.from_bytes((dst / "_lease.json").read_bytes()).run_id == "thief"
