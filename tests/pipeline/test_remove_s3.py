"""The main job on the real local Ray cluster and the real S3 server (issue #4's must-show)."""

import pytest

from clear_ray.manifest import read_manifest_table
from clear_ray.pipeline import run_remove_job
from tests.pipeline.helpers import job_config, stream_signature

CLIPS = {  # name -> ClipSpec fields: different sizes and rates, all with audio
    "a.mp4": dict(frames=20, fps="25", width=64, height=48),
    "nested/b.mp4": dict(frames=13, fps="30000/1001", width=96, height=64),
    "c.mkv": dict(frames=9, fps="24", width=80, height=48, audio_tracks=2),
    "d.mov": dict(frames=30, fps="60", width=48, height=64),
}


@pytest.fixture
def s3_catalog(s3_server, s3_bucket, make_clip, tmp_path):
    fs = s3_server.filesystem()
    for name, spec in CLIPS.items():
        fs.put_file(str(make_clip(name.replace("/", "_"), **spec)), f"{s3_bucket}/src/{name}")
    corrupt = make_clip("corrupt.mp4", frames=20).read_bytes()
    fs.pipe(f"{s3_bucket}/src/corrupt.mp4", corrupt[: len(corrupt) // 3])
    fs.pipe(f"{s3_bucket}/src/empty.mp4", b"")
    return fs, f"{s3_bucket}/src", f"{s3_bucket}/dst"


def _config(s3_server, src, dst, **overrides):
    storage = {"storage.endpoint_url": s3_server.endpoint_url, "storage.access_key_id": s3_server.access_key,
               "storage.secret_access_key": s3_server.secret_key, "storage.region": "us-east-1"}
    return job_config(src, dst, **storage, **overrides)


def _statuses(summary):
    return {row.rel_path: row.status for row in summary.rows}


@pytest.mark.slow
def test_s3_catalog_outputs_failures_resume_touch_and_force(ray_cluster, s3_server, s3_catalog, tmp_path):
    fs, src, dst = s3_catalog
    config = _config(s3_server, src, dst)

    # First run: 4 outputs identical in frames/timing/size/audio, 2 clear failures, exit 1.
    first = run_remove_job(config)
    assert first.exit_code == 1
    assert _statuses(first) == {"a.mp4": "done", "nested/b.mp4": "done", "c.mkv": "done", "d.mov": "done",
                                "corrupt.mp4": "failed", "empty.mp4": "failed"}
    reasons = {row.rel_path: row.error for row in first.rows if row.status == "failed"}
    assert all(reason and "\n" not in reason for reason in reasons.values())
    assert "empty" in reasons["empty.mp4"].lower() or "zero" in reasons["empty.mp4"].lower()
    for name in CLIPS:
        with fs.open(f"{src}/{name}", "rb") as source, fs.open(f"{dst}/{name}", "rb") as output:
            assert stream_signature(output) == stream_signature(source), name
    # No staged data left (SeaweedFS may keep an empty directory entry; S3 has none).
    leftovers = fs.find(f"{dst}/_staging", detail=True) if fs.exists(f"{dst}/_staging") else {}
    assert [name for name, info in leftovers.items() if info["type"] == "file"] == []
    table = read_manifest_table(dst, storage_options=config.storage.s3_storage_options())
    assert table.num_rows == 6

    # Re-run: nothing processed; broken files reported as quarantined, not re-failed: exit 0.
    second = run_remove_job(config)
    assert second.exit_code == 0
    assert sorted(_statuses(second).values()) == ["quarantined"] * 2 + ["skipped"] * 4

    # Touch one input (re-upload): only it is processed again.
    fs.pipe(f"{src}/a.mp4", fs.cat(f"{src}/a.mp4"))
    third = run_remove_job(config)
    assert {k: v for k, v in _statuses(third).items() if v != "skipped" and v != "quarantined"} == {"a.mp4": "done"}

    # --force: everything again (broken files fail again, exit 1).
    forced = run_remove_job(_config(s3_server, src, dst, force=True))
    assert sorted(_statuses(forced).values()) == ["done"] * 4 + ["failed"] * 2
    assert forced.exit_code == 1
