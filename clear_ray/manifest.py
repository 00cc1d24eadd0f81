"""The Parquet manifest under ``DST/_manifest/``: one row per input per run.

Each finished input is recorded at once as a small JSON row under
``_manifest/pending/<run id>/`` (durable even if the job is killed a second later); the
end of a run compacts its rows into ``_manifest/run-<run id>.parquet``. Reading takes
both, so rows of a killed run still count. The latest row of an input decides whether the
next run skips it.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from clear_ray import storage

Status = Literal["done", "failed", "skipped", "quarantined"]
# "input": the file itself is broken (zero bytes, not a video, corrupt): retrying cannot
# heal it, so it is quarantined at once. "transient": storage errors, crashed or timed-out
# workers: retried on later runs up to max_attempts.
ErrorKind = Literal["input", "transient"]


@dataclass
class ManifestRow:
    run_id: str
    finished_at: float  # unix seconds
    input_uri: str
    rel_path: str
    input_fingerprint: str
    model_fingerprint: str
    config_fingerprint: str
    status: Status
    backend: str
    output_uri: str | None = None
    comparison_uri: str | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    attempts: int = 0  # consecutive failed attempts of this input version, this run included
    frames: int | None = None
    fps: str | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    seconds_plan: float | None = None
    seconds_denoise: float | None = None
    seconds_stitch: float | None = None
    seconds_mux: float | None = None
    seconds_total: float | None = None


_COLUMNS = [f.name for f in fields(ManifestRow)]


def _schema():
    import pyarrow as pa

    types = {"finished_at": pa.float64(), "attempts": pa.int32(), "frames": pa.int64(), "width": pa.int32(),
             "height": pa.int32(), "duration_s": pa.float64()}
    return pa.schema([(name, types.get(name, pa.float64() if name.startswith("seconds_") else pa.string()))
                      for name in _COLUMNS])


class Manifest:
    def __init__(self, dst: str, run_id: str, storage_options: dict | None = None):
        self.dir_uri = storage.join(dst, "_manifest")
        self.run_id = run_id
        self.storage_options = storage_options
        self.rows: list[ManifestRow] = []

    def record(self, row: ManifestRow) -> None:
        """Persist one finished input immediately (atomic JSON under pending/)."""
        self.rows.append(row)
        name = f"{row.rel_path.replace('/', '__')}.{len(self.rows):06d}.json"
        uri = storage.join(self.dir_uri, "pending", self.run_id, name)
        storage.write_bytes_atomic(uri, json.dumps(asdict(row)).encode(), self.storage_options)

    def latest_rows(self) -> dict[str, ManifestRow]:
        """The newest row per input URI across every run recorded under DST."""
        latest: dict[str, ManifestRow] = {}
        for row in self._read_all():
            current = latest.get(row.input_uri)
            if current is None or row.finished_at >= current.finished_at:
                latest[row.input_uri] = row
        return latest

    def compact(self) -> None:
        """Fold every pending run directory (this run's and killed runs') into Parquet files."""
        fs, pending_path = storage.filesystem(storage.join(self.dir_uri, "pending"), self.storage_options)
        if not fs.exists(pending_path):
            return
        for run_dir in sorted(fs.ls(pending_path, detail=False)):
            run_id = run_dir.rstrip("/").rsplit("/", 1)[-1]
            names = sorted(p for p in fs.ls(run_dir, detail=False) if p.endswith(".json"))
            rows = [_row_from_json(data) for data in _read_many(fs, names)]
            parquet_uri = storage.join(self.dir_uri, f"run-{run_id}.parquet")
            if rows:
                existing = _read_parquet(parquet_uri, self.storage_options) if storage.exists(parquet_uri, self.storage_options) else []
                storage.write_bytes_atomic(parquet_uri, _to_parquet(existing + rows), self.storage_options)
            fs.rm(run_dir, recursive=True)
        if fs.exists(pending_path) and not fs.ls(pending_path, detail=False):
            fs.rm(pending_path, recursive=True)

    def _read_all(self) -> list[ManifestRow]:
        fs, path = storage.filesystem(self.dir_uri, self.storage_options)
        if not fs.exists(path):
            return []
        rows: list[ManifestRow] = []
        names = fs.find(path)
        for name in names:
            if name.endswith(".parquet"):
                rows += _read_parquet(storage.to_uri(fs, name), self.storage_options)
        pending = [name for name in names if name.endswith(".json") and "/pending/" in name]
        rows += [_row_from_json(data) for data in _read_many(fs, pending)]
        return rows


def read_manifest_table(dst: str, storage_options: dict | None = None):
    """All rows under DST/_manifest as one pyarrow Table (for users and tests)."""
    import pyarrow as pa

    manifest = Manifest(dst, run_id="reader", storage_options=storage_options)
    rows = manifest._read_all()
    return pa.Table.from_pylist([asdict(r) for r in rows], schema=_schema())


def _read_many(fs, paths: list[str]) -> list[bytes]:
    """Contents of many small objects; fsspec fetches them concurrently on object stores."""
    if not paths:
        return []
    contents = fs.cat(paths)
    return [contents[path] for path in paths] if isinstance(contents, dict) else [contents]


def _to_parquet(rows: list[ManifestRow]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([asdict(r) for r in rows], schema=_schema())
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _read_parquet(uri: str, storage_options: dict | None) -> list[ManifestRow]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(storage.read_bytes(uri, storage_options)))
    return [ManifestRow(**{k: v for k, v in row.items() if k in _COLUMNS}) for row in table.to_pylist()]


def _row_from_json(data: bytes) -> ManifestRow:
    raw: dict[str, Any] = json.loads(data)
    return ManifestRow(**{k: v for k, v in raw.items() if k in _COLUMNS})
