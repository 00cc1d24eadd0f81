"""The Parquet manifest under ``DST/_manifest/``: the latest state of every input, plus history.

Layout (the cost of reading it at start-up grows with the number of inputs, not of runs)::

    _manifest/state.parquet              latest row per input; rewritten once per run
    _manifest/history/run-<id>.parquet   every row of one run, append-only (for users)
    _manifest/pending/<id>/*.json        a running run's rows, one per finished input,
                                         durable the moment the input finishes
    _manifest/pending/<id>/bulk-*.parquet  rows decided at start-up (skipped, quarantined):
                                         one file, not one PUT per input
    _manifest/run-<id>.parquet           the old layout (one file per run): still read, and
                                         moved into history/ by the next run

Only the run holding the DST lease (clear_ray/lease.py) writes here, so folding the rows of
a killed run into ``state.parquet`` cannot race with that run: ``finalize`` deletes exactly
the pending and old-layout files it folded, after the new state is written.
"""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from clear_ray import storage

log = logging.getLogger(__name__)

Status = Literal["done", "failed", "skipped", "quarantined"]
# "input": the file itself is broken (zero bytes, not a video, corrupt): retrying cannot
# heal it, so it is quarantined at once. "transient": storage errors, crashed or timed-out
# workers: retried on later runs up to max_attempts. "storage": the storage stayed unreachable
# past the in-run retries; retried on later runs and never counted towards quarantine.
ErrorKind = Literal["input", "transient", "storage"]


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


STATE_NAME = "state.parquet"


class Manifest:
    def __init__(self, dst: str, run_id: str, storage_options: dict | None = None):
        self.dir_uri = storage.join(dst, "_manifest")
        self.run_id = run_id
        self.storage_options = storage_options
        self.rows: list[ManifestRow] = []
        self.unsaved: list[ManifestRow] = []  # recorded while storage was unreachable
        self._bulk_files = 0

    # -- writing -----------------------------------------------------------------------------
    def record(self, row: ManifestRow) -> None:
        """Persist one finished input immediately (atomic JSON under pending/).

        Storage that stays unreachable past the retries does not end the run: the row is
        kept and written with the next successful write or by :meth:`finalize`."""
        self.rows.append(row)
        name = f"{row.rel_path.replace('/', '__')}.{len(self.rows):06d}.json"
        uri = storage.join(self.dir_uri, "pending", self.run_id, name)
        try:
            storage.write_bytes_atomic(uri, json.dumps(asdict(row)).encode(), self.storage_options)
        except storage.StorageUnavailable as error:
            log.warning("manifest row for %s kept in memory for now: %s", row.rel_path, error)
            self.unsaved.append(row)
            return
        self._flush_unsaved()

    def _flush_unsaved(self) -> None:
        if self.unsaved:
            rows, self.unsaved = self.unsaved, []
            self._write_bulk(rows)

    def record_many(self, rows: list[ManifestRow]) -> None:
        """Persist many rows at once (start-up decisions) as one Parquet file."""
        if not rows:
            return
        self.rows.extend(rows)
        self._write_bulk(rows)

    def _write_bulk(self, rows: list[ManifestRow]) -> None:
        self._bulk_files += 1
        uri = storage.join(self.dir_uri, "pending", self.run_id, f"bulk-{self._bulk_files:06d}.parquet")
        storage.write_bytes_atomic(uri, _to_parquet(rows), self.storage_options)

    def finalize(self) -> None:
        """Fold this run's rows, and any killed run's, into ``state.parquet`` and history.

        Must run under the DST lease. Rows are never lost: the new state and history are
        written before the pending / old-layout files they came from are deleted, and a
        pending file written after they were read is left for the next run.
        """
        self._flush_unsaved()
        sources = self._read_sources()
        by_run: dict[str, list[ManifestRow]] = {}
        for uri, rows in sources.pending.items():
            run_id = uri.rstrip("/").rsplit("/", 2)[-2]
            by_run.setdefault(run_id, []).extend(rows)
        fs, _ = storage.filesystem(self.dir_uri, self.storage_options)
        for run_id, rows in by_run.items():
            history_uri = storage.join(self.dir_uri, "history", f"run-{run_id}.parquet")
            # A run folded before (its finalize was killed after writing history) keeps its rows.
            earlier = _read_parquet(history_uri, self.storage_options) if storage.exists(history_uri, self.storage_options) else []
            storage.write_bytes_atomic(history_uri, _to_parquet(_unique(earlier + rows)), self.storage_options)
        for uri, rows in sources.legacy.items():
            history_uri = storage.join(self.dir_uri, "history", uri.rstrip("/").rsplit("/", 1)[-1])
            storage.write_bytes_atomic(history_uri, _to_parquet(rows), self.storage_options)
        if sources.pending or sources.legacy:
            latest = _latest(sources.all_rows())
            storage.write_bytes_atomic(storage.join(self.dir_uri, STATE_NAME), _to_parquet(list(latest.values())),
                                       self.storage_options)
        for uri in [*sources.pending, *sources.legacy]:
            _, path = storage.filesystem(uri, self.storage_options)
            storage.retry(fs.rm_file, path, what=f"remove folded manifest file {uri}")
        self._drop_empty_pending_dirs(fs)

    # -- reading -----------------------------------------------------------------------------
    def latest_rows(self) -> dict[str, ManifestRow]:
        """The newest row per input URI: the consolidated state, plus rows of runs not yet
        folded into it (a killed run's, this run's) and old-layout files."""
        return _latest(self._read_sources().all_rows())

    def compact(self) -> None:
        """The old name of :meth:`finalize`."""
        self.finalize()

    def _read_sources(self) -> "_Sources":
        fs, root = storage.filesystem(self.dir_uri, self.storage_options)
        sources = _Sources()
        top = storage.retry(_ls_or_empty, fs, root, what="list the manifest")
        state_path = f"{root.rstrip('/')}/{STATE_NAME}"
        for name in top:
            base = name.rstrip("/").rsplit("/", 1)[-1]
            if name.rstrip("/") == state_path:
                sources.state = _read_parquet(storage.to_uri(fs, name), self.storage_options)
            elif base.startswith("run-") and base.endswith(".parquet"):
                sources.legacy[storage.to_uri(fs, name)] = _read_parquet(storage.to_uri(fs, name), self.storage_options)
        pending_root = f"{root.rstrip('/')}/pending"
        if any(name.rstrip("/") == pending_root for name in top):
            for run_dir in storage.retry(_ls_or_empty, fs, pending_root, what="list pending manifest rows"):
                names = sorted(storage.retry(_ls_or_empty, fs, run_dir, what="list pending manifest rows"))
                jsons = [n for n in names if n.endswith(".json")]
                for name, data in zip(jsons, storage.retry(_read_many, fs, jsons, what="read pending manifest rows")):
                    sources.pending[storage.to_uri(fs, name)] = [_row_from_json(data)]
                for name in (n for n in names if n.endswith(".parquet")):
                    sources.pending[storage.to_uri(fs, name)] = _read_parquet(storage.to_uri(fs, name), self.storage_options)
        return sources

    def _drop_empty_pending_dirs(self, fs) -> None:
        """Local directories left empty by folding (object stores have no empty directories)."""
        pending = storage.join(self.dir_uri, "pending")
        if storage.is_remote(pending) or not os.path.isdir(pending):
            return
        for run_dir in os.listdir(pending):
            path = os.path.join(pending, run_dir)
            if os.path.isdir(path) and not os.listdir(path):
                os.rmdir(path)
        if not os.listdir(pending):
            os.rmdir(pending)


@dataclass
class _Sources:
    state: list[ManifestRow] = field(default_factory=list)
    legacy: dict[str, list[ManifestRow]] = field(default_factory=dict)  # uri -> rows
    pending: dict[str, list[ManifestRow]] = field(default_factory=dict)  # uri -> rows

    def all_rows(self) -> list[ManifestRow]:
        rows = list(self.state)
        for group in (*self.legacy.values(), *self.pending.values()):
            rows += group
        return rows


def _latest(rows: list[ManifestRow]) -> dict[str, ManifestRow]:
    latest: dict[str, ManifestRow] = {}
    for row in rows:
        current = latest.get(row.input_uri)
        if current is None or row.finished_at >= current.finished_at:
            latest[row.input_uri] = row
    return latest


def _unique(rows: list[ManifestRow]) -> list[ManifestRow]:
    seen: set[tuple] = set()
    out = []
    for row in rows:
        key = (row.run_id, row.input_uri, row.finished_at, row.status)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def _ls_or_empty(fs, path: str) -> list[str]:
    try:
        return [name for name in fs.ls(path, detail=False) if name.rstrip("/") != path.rstrip("/")]
    except FileNotFoundError:
        return []


def read_manifest_table(dst: str, storage_options: dict | None = None):
    """Every row ever recorded under DST/_manifest (history, old layout, pending) as one
    pyarrow Table, for users and tests. Start-up never reads this much."""
    import pyarrow as pa

    manifest = Manifest(dst, run_id="reader", storage_options=storage_options)
    sources = manifest._read_sources()
    rows = [row for group in (*sources.legacy.values(), *sources.pending.values()) for row in group]
    fs, root = storage.filesystem(manifest.dir_uri, storage_options)
    for name in sorted(storage.retry(_ls_or_empty, fs, f"{root.rstrip('/')}/history", what="list manifest history")):
        if name.endswith(".parquet"):
            rows += _read_parquet(storage.to_uri(fs, name), storage_options)
    return pa.Table.from_pylist([asdict(r) for r in _unique(rows)], schema=_schema())


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
