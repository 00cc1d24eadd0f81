"""Build ``DST/index.parquet`` from the shards' ``meta.json`` files.

Rebuilt from every finished shard under DST (not from this run's rows), so a resumed run,
or one that found everything done, still writes the full index.
"""

from __future__ import annotations

import io
import json
from typing import Any

from clear_ray import storage
from clear_ray.pairs.schema import COLUMN_NAMES, INDEX_NAME, META_NAME, SHARDS_DIR, index_schema


def list_done_pairs(dst: str, storage_options: dict | None = None) -> dict[str, str]:
    """pair_id -> meta.json URI of every complete shard under DST (one recursive listing)."""
    fs, root = storage.filesystem(storage.join(dst, SHARDS_DIR), storage_options)
    if not fs.exists(root):
        return {}
    done = {}
    for path in fs.find(root):
        if path.endswith("/" + META_NAME):
            done[path.rsplit("/", 2)[-2]] = storage.to_uri(fs, path)
    return done


def read_metas(uris: list[str], storage_options: dict | None = None) -> list[dict[str, Any]]:
    if not uris:
        return []
    fs, _ = storage.filesystem(uris[0], storage_options)
    paths = [storage.filesystem(u, storage_options)[1] for u in uris]
    contents = fs.cat(paths)  # concurrent on object stores
    return [json.loads(contents[p]) for p in paths]


def write_index(dst: str, storage_options: dict | None = None) -> list[dict[str, Any]]:
    """Write the index of every finished shard under DST atomically; return its rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = list_done_pairs(dst, storage_options)
    metas = read_metas([done[k] for k in sorted(done)], storage_options)
    rows = [{name: meta.get(name) for name in COLUMN_NAMES} for meta in metas]
    table = pa.Table.from_pylist(rows, schema=index_schema())
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    storage.write_bytes_atomic(storage.join(dst, INDEX_NAME), buffer.getvalue(), storage_options)
    return rows
