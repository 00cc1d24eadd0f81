"""Resume decisions and the manifest they read."""

import pytest

from clear_ray.catalog import InputVideo
from clear_ray.manifest import Manifest, ManifestRow, read_manifest_table
from clear_ray.resume import decide

VIDEO = InputVideo(uri="/in/a.mp4", rel_path="a.mp4", size=10, version="mtime=1", fingerprint="fp-a")


def _row(status, **fields):
    base = dict(run_id="r1", finished_at=1.0, input_uri=VIDEO.uri, rel_path=VIDEO.rel_path, input_fingerprint="fp-a",
                model_fingerprint="m", config_fingerprint="c", status=status, backend="identity")
    return ManifestRow(**{**base, **fields})


def _decide(latest, **kwargs):
    options = dict(model_fingerprint="m", config_fingerprint="c", output_exists=True)
    return decide(VIDEO, latest, **{**options, **kwargs})


@pytest.mark.parametrize(("latest", "kwargs", "action"), [
    (None, {}, "process"),
    (_row("done"), {}, "skip"),
    (_row("skipped"), {}, "skip"),
    (_row("done"), {"force": True}, "process"),
    (_row("done", input_fingerprint="old"), {}, "process"),
    (_row("done"), {"model_fingerprint": "m2"}, "process"),
    (_row("done"), {"config_fingerprint": "c2"}, "process"),
    (_row("done"), {"output_exists": False}, "process"),
    (_row("failed", error="corrupt", error_kind="input", attempts=1), {}, "quarantined"),
    (_row("failed", error="corrupt", error_kind="input", attempts=1), {"retry_failed": True}, "process"),
    (_row("failed", error="corrupt", error_kind="input", attempts=1, input_fingerprint="old"), {}, "process"),
    (_row("failed", error="s3 timeout", error_kind="transient", attempts=1), {}, "process"),
    (_row("failed", error="s3 timeout", error_kind="transient", attempts=3), {}, "quarantined"),
    (_row("quarantined", error="s3 timeout", error_kind="transient", attempts=3), {}, "quarantined"),
])
def test_decisions(latest, kwargs, action):
    assert _decide(latest, **kwargs).action == action


def test_transient_failure_carries_its_attempt_count():
    decision = _decide(_row("failed", error="x", error_kind="transient", attempts=2), max_attempts=3)
    assert decision.action == "process" and decision.previous_attempts == 2


def test_manifest_rows_survive_a_killed_run_and_compact_to_parquet(tmp_path):
    dst = str(tmp_path / "dst")
    killed = Manifest(dst, run_id="run-a")
    killed.record(_row("done", run_id="run-a", finished_at=1.0))  # never compacted: "killed"
    second = Manifest(dst, run_id="run-b")
    assert second.latest_rows()[VIDEO.uri].status == "done"
    second.record(_row("failed", run_id="run-b", finished_at=2.0, error="boom", error_kind="transient", attempts=1))
    second.finalize()
    manifest_dir = tmp_path / "dst" / "_manifest"
    assert sorted(p.name for p in manifest_dir.iterdir()) == ["history", "state.parquet"]
    assert sorted(p.name for p in (manifest_dir / "history").iterdir()) == ["run-run-a.parquet", "run-run-b.parquet"]
    latest = Manifest(dst, run_id="run-c").latest_rows()[VIDEO.uri]
    assert (latest.status, latest.error, latest.attempts) == ("failed", "boom", 1)
    table = read_manifest_table(dst)
    assert table.num_rows == 2 and set(table.column("status").to_pylist()) == {"done", "failed"}
