"""Local paths and fsspec URLs (s3://...) behind one small set of helpers.

Every part of the system addresses files by URI string; these helpers turn a URI into an
fsspec filesystem + path with the job's storage options, and write files atomically.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from typing import Any, Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

REMOTE_PREFIXES = ("s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://", "http://", "https://", "memory://")


def is_remote(uri: str) -> bool:
    return uri.startswith(REMOTE_PREFIXES)


def options_for(uri: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """The storage options that apply to ``uri``: S3 options only for S3 URLs."""
    if storage_options and uri.startswith(("s3://", "s3a://")):
        return dict(storage_options)
    return {}


def filesystem(uri: str, storage_options: dict[str, Any] | None = None):
    """``(fs, path)`` for ``uri``.

    A remote client is made once per process and set of options, and reused: a fresh S3
    client costs 0.1-0.4 s (botocore loads its service model and opens a new connection),
    a request on a warm one ~6 ms. It keeps no listing cache, because other processes
    (actors, a concurrent run) change what lies under DST at any moment. After a fork the
    child makes its own client, never sharing the parent's connection pool."""
    import fsspec

    options = options_for(uri, storage_options)
    if not is_remote(uri):
        return fsspec.core.url_to_fs(uri, **options)
    key = (uri.split("://", 1)[0], _freeze(options))
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            options.update(skip_instance_cache=True, use_listings_cache=False)
            client, _ = fsspec.core.url_to_fs(uri, **options)
            _CLIENTS[key] = client
    return client, client._strip_protocol(uri)


_CLIENTS: dict[tuple, Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _forget_clients_in_child() -> None:
    """After ``fork``: a new lock (another thread of the parent may have held the old one
    at the fork, and nobody would ever release it in the child) and no clients (their
    sockets and event loop belong to the parent)."""
    global _CLIENTS, _CLIENTS_LOCK
    _CLIENTS = {}
    _CLIENTS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_forget_clients_in_child)


def _freeze(value: Any) -> Any:
    """A hashable, order-independent form of nested storage options."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


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


# -- transient errors ---------------------------------------------------------------------
# How long one storage call keeps retrying a transient error before giving up. Long enough
# to ride out an S3 restart or a throttling burst; the environment variable lets tests and
# impatient users shorten it.
RETRY_DEADLINE_S = float(os.environ.get("CLEAR_RAY_STORAGE_RETRY_S", "120"))
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
                    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests",
                    "503", "500", "502", "504", "429"}
_TRANSIENT_NAMES = {"EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError",
                    "ConnectionError", "ProxyConnectionError", "ClientConnectionError", "ClientConnectorError",
                    "ServerDisconnectedError", "ClientPayloadError", "ClientOSError", "FSTimeoutError",
                    "IncompleteRead", "ResponseStreamingError", "HTTPClientError", "ServerTimeoutError"}


class StorageUnavailable(OSError):
    """A storage call kept failing with transient errors for the whole retry deadline."""


def is_transient(error: BaseException) -> bool:
    """Throttling, 5xx and connection errors: worth retrying. Missing objects, denied
    access and failed preconditions are answers, not accidents, and are never retried."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StorageUnavailable):
            return True
        if isinstance(current, (FileNotFoundError, PermissionError, FileExistsError, IsADirectoryError,
                                NotADirectoryError)):
            return False
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
            status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            return code in _TRANSIENT_CODES or status >= 500 or status == 429
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(current).__mro__):
            return True
        current = current.__cause__ or current.__context__
    return False


def retry(call: Callable[..., T], *args: Any, what: str = "storage call", deadline_s: float | None = None,
          **kwargs: Any) -> T:
    """``call(*args, **kwargs)``, retried with capped exponential backoff (and jitter)
    while it fails with a transient error; after ``deadline_s`` the last error is raised as
    :class:`StorageUnavailable`. Non-transient errors are raised at once."""
    deadline = time.monotonic() + (RETRY_DEADLINE_S if deadline_s is None else deadline_s)
    delay = 0.25
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if not is_transient(error):
                raise
            if time.monotonic() + delay > deadline:
                raise StorageUnavailable(f"{what}: storage unavailable: {_first_line(error)}") from error
            log.warning("%s: transient storage error, retrying in %.1f s: %s", what, delay, _first_line(error))
            time.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, 8.0)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


def open_for_reading(fs, path: str, **kwargs: Any):
    """``fs.open(path, "rb", **kwargs)`` whose range reads retry transient errors too: a
    decoder reading a long video must ride out an S3 restart, not report it as corrupt."""
    handle = retry(fs.open, path, "rb", what=f"open {path}", **kwargs)
    cache = getattr(handle, "cache", None)
    fetch = getattr(cache, "fetcher", None)
    if fetch is not None:
        cache.fetcher = lambda start, end: retry(fetch, start, end, what=f"read {path}")
    return handle


def write_bytes_atomic(uri: str, data: bytes, storage_options: dict[str, Any] | None = None) -> None:
    """Write ``data`` so that ``uri`` either does not exist or holds all of it.

    Locally: a temp file in the same directory, then os.replace. Remote object stores:
    a single PUT, which is atomic by itself.
    """
    if is_remote(uri):
        fs, path = filesystem(uri, storage_options)
        retry(fs.pipe_file, path, data, what=f"write {uri}")
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
    return retry(fs.cat_file, path, what=f"read {uri}")


def exists(uri: str, storage_options: dict[str, Any] | None = None) -> bool:
    fs, path = filesystem(uri, storage_options)
    return retry(_exists_strict, fs, path, what=f"look up {uri}")


def remove_tree(uri: str, storage_options: dict[str, Any] | None = None) -> None:
    fs, path = filesystem(uri, storage_options)

    def remove() -> None:
        if _exists_strict(fs, path):
            fs.rm(path, recursive=True)

    retry(remove, what=f"remove {uri}")


def _exists_strict(fs, path: str) -> bool:
    """``fs.exists`` that raises transient errors: s3fs's ``exists`` answers False when the
    server cannot be reached, which would read as "never written" during an outage."""
    try:
        fs.info(path)
        return True
    except FileNotFoundError:
        return False
