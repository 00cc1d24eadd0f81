"""The manifest's layout: consolidated state + history, old layouts still read, bounded start-up reads."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clear_ray import storage
from clear_ray.manifest import Manifest, ManifestRow, _schema, read_manifest_table


def _row(uri, status="done", run_id="r1", finished_at=1.0, **fields):
    base = dict(run_id=run_id, finished_at=finished_at, input_uri=uri, rel_path=uri.rsplit("/", 1)[-1],
                input_fingerprint="fp", model_fingerprint="m", config_fingerprint="c", status=status,
                backend="identity")
    return ManifestRow(**{**base, **fields})


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_skipped_rows_are_one_file_and_runs_fold_into_one_state(tmp_path):
    dst = str(tmp_path / "dst")
    first = Manifest(dst, "run-1")
    for i in range(5):
        first.record(_row(f"/in/{i}.mp4", run_id="run-1", finished_at=1.0))
    first.finalize()
    second = Manifest(dst, "run-2")
    assert len(second.latest_rows()) == 5
    second.record_many([_row(f"/in/{i}.mp4", "skipped", run_id="run-2", finished_at=2.0) for i in range(5)])
    assert [f for f in _files(tmp_path / "dst") if "pending" in f] == ["_manifest/pending/run-2/bulk-000001.parquet"]
    second.finalize()
    assert _files(tmp_path / "dst") == ["_manifest/history/run-run-1.parquet", "_manifest/history/run-run-2.parquet",
                                        "_manifest/state.parquet"]
    state = pq.read_table(tmp_path / "dst" / "_manifest" / "state.parquet")
    assert state.num_rows == 5 and set(state.column("status").to_pylist()) == {"skipped"}
    assert read_manifest_table(dst).num_rows == 10  # the history keeps every run's rows


def test_old_layout_is_read_and_moved_into_history(tmp_path):
    # What earlier versions wrote: one Parquet file per run directly under _manifest/.
    manifest_dir = tmp_path / "dst" / "_manifest"
    manifest_dir.mkdir(parents=True)
    old = [_row("/in/a.mp4", run_id="old", finished_at=1.0), _row("/in/b.mp4", "failed", run_id="old",
                                                                 finished_at=1.0, error="x", error_kind="input")]
    pq.write_table(pa.Table.from_pylist([r.__dict__ for r in old], schema=_schema()), manifest_dir / "run-old.parquet")
    (manifest_dir / "pending" / "killed").mkdir(parents=True)
    (manifest_dir / "pending" / "killed" / "c.mp4.000001.json").write_text(
        json.dumps(_row("/in/c.mp4", run_id="killed", finished_at=2.0).__dict__))

    manifest = Manifest(str(tmp_path / "dst"), "new")
    latest = manifest.latest_rows()
    assert {uri: row.status for uri, row in latest.items()} == {"/in/a.mp4": "done", "/in/b.mp4": "failed",
                                                                "/in/c.mp4": "done"}
    manifest.finalize()
    assert _files(tmp_path / "dst") == ["_manifest/history/run-killed.parquet", "_manifest/history/run-old.parquet",
                                        "_manifest/state.parquet"]
    assert Manifest(str(tmp_path / "dst"), "later").latest_rows() == latest
    assert read_manifest_table(str(tmp_path / "dst")).num_rows == 3


def test_a_row_recorded_while_storage_is_down_is_kept_and_written_later(tmp_path, monkeypatch):
    dst = str(tmp_path / "dst")
    manifest = Manifest(dst, "run-1")
    real_write = storage.write_bytes_atomic

    def unavailable(*args, **kwargs):
        raise storage.StorageUnavailable("write: storage unavailable: connection refused")

    monkeypatch.setattr(storage, "write_bytes_atomic", unavailable)
    manifest.record(_row("/in/a.mp4"))  # does not raise: the run goes on
    assert manifest.unsaved and not (tmp_path / "dst").exists()
    monkeypatch.setattr(storage, "write_bytes_atomic", real_write)
    manifest.record(_row("/in/b.mp4"))
    assert not manifest.unsaved
    assert set(Manifest(dst, "reader").latest_rows()) == {"/in/a.mp4", "/in/b.mp4"}


@pytest.mark.parametrize("error, transient", [
    (ConnectionRefusedError("refused"), True),
    (TimeoutError("slow"), True),
    (FileNotFoundError("gone"), False),
    (PermissionError("denied"), False),
    (ValueError("bad"), False),
])
def test_transient_errors_are_told_apart(error, transient):
    assert storage.is_transient(error) is transient


def test_client_errors_by_code():
    from botocore.exceptions import ClientError, EndpointConnectionError

    def client_error(code, status):
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")

    assert storage.is_transient(client_error("SlowDown", 503))
    assert storage.is_transient(client_error("InternalError", 500))
    assert not storage.is_transient(client_error("PreconditionFailed", 412))
    assert not storage.is_transient(client_error("NoSuchKey", 404))
    wrapped = OSError(5, "translated by s3fs")
    wrapped.__cause__ = client_error("ServiceUnavailable", 503)
    assert storage.is_transient(wrapped)
    assert storage.is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))


def test_retry_heals_a_transient_error_and_gives_up_after_its_deadline():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset")
        return "ok"

    assert storage.retry(flaky, what="flaky") == "ok" and len(calls) == 3
    with pytest.raises(storage.StorageUnavailable, match="storage unavailable"):
        storage.retry(lambda: (_ for _ in ()).throw(ConnectionRefusedError("down")), what="down", deadline_s=0.3)
    with pytest.raises(FileNotFoundError):  # an answer, not an accident: never retried
        storage.retry(lambda: (_ for _ in ()).throw(FileNotFoundError("x")), what="missing")
