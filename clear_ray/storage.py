"""Local paths and fsspec URLs (s3://...) behind one small set of helpers.

Every part of the system addresses files by URI string; these helpers turn a URI into an
fsspec filesystem + path with the job's storage options, and write files atomically.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

REMOTE_PREFIXES = ("s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://", "http://", "https://", "memory://")


def is_remote(uri: str) -> bool:
    return uri.startswith(REMOTE_PREFIXES)


def options_for(uri: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """The storage options that apply to ``uri``: S3 options only for S3 URLs."""
    if storage_options and uri.startswith(("s3://", "s3a://")):
        return dict(storage_options)
    return {}


def filesystem(uri: str, storage_options: dict[str, Any] | None = None):
    """``(fs, path)`` for ``uri``. Remote clients skip fsspec's instance cache so forked
    workers never share a connection pool created in the parent."""
    import fsspec

    options = options_for(uri, storage_options)
    if is_remote(uri):
        options.setdefault("skip_instance_cache", True)
    return fsspec.core.url_to_fs(uri, **options)


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a local path or URL with '/'."""
    out = uri.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def to_uri(fs, path: str) -> str:
    """A path from ``fs`` back to the URI form the user wrote (no file:// for local)."""
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return path
    return fs.unstrip_protocol(path)


def write_bytes_atomic(uri: str, data: bytes, storage_options: dict[str, Any] | None = None) -> None:
    """Write ``data`` so that ``uri`` either does not exist or holds all of it.

    Locally: a temp file in the same directory, then os.replace. Remote object stores:
    a single PUT, which is atomic by itself.
    """
    if is_remote(uri):
        fs, path = filesystem(uri, storage_options)
        fs.pipe_file(path, data)
        return
    directory = os.path.dirname(os.path.abspath(uri))
    os.makedirs(directory, exist_ok=True)
    temp = os.path.join(directory, f".{os.path.basename(uri)}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
        os.replace(temp, uri)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def read_bytes(uri: str, storage_options: dict[str, Any] | None = None) -> bytes:
    fs, path = filesystem(uri, storage_options)
    return fs.cat_file(path)


def exists(uri: str, storage_options: dict[str, Any] | None = None) -> bool:
    fs, path = filesystem(uri, storage_options)
    return fs.exists(path)


def remove_tree(uri: str, storage_options: dict[str, Any] | None = None) -> None:
    fs, path = filesystem(uri, storage_options)
    if fs.exists(path):
        fs.rm(path, recursive=True)
