"""One writer per DST: a lease object ``DST/_lease.json`` taken atomically and kept alive.

Two runs writing one DST would compute everything twice and delete each other's staging
and manifest rows, so a run first takes the lease:

- **take**: create the object only if it does not exist (S3 ``If-None-Match: *``, answered
  412 when it does; locally ``os.link`` of a complete temp file, which fails on an existing
  name like ``O_EXCL``);
- **renew**: a heartbeat thread rewrites it every ``ttl_s / 3`` with compare-and-swap on the
  version it last wrote (S3 ``If-Match: <etag>``; locally a version check under ``flock``),
  so a run that was taken over finds out at its next renewal instead of overwriting;
- **take over**: a lease whose holder has not renewed for ``ttl_s`` (the holder was killed)
  is replaced by the same compare-and-swap on the version the taker read: of two takers
  only one can win;
- **release**: a finished run deletes it (only if it still holds it).

Expiry compares the holder's ``renewed_at`` with the taker's wall clock, so the nodes'
clocks must agree to well within the TTL (NTP; the default TTL is 2 minutes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from clear_ray import storage

log = logging.getLogger(__name__)

LEASE_NAME = "_lease.json"
# Exit codes of `clear-ray remove` (README): another run holds DST / this run lost it.
EXIT_LEASE_HELD = 3
EXIT_LEASE_LOST = 4


class LeaseHeld(RuntimeError):
    """Another live run holds the lease on DST."""

    def __init__(self, holder: "LeaseRecord", dst: str):
        self.holder = holder
        super().__init__(f"DST {dst} is being written by another run: {holder.describe()}")


class LeaseLost(RuntimeError):
    """This run no longer holds the lease (another run took it, or it could not be renewed)."""


@dataclass(frozen=True)
class LeaseRecord:
    run_id: str
    host: str
    pid: int
    since: float  # unix seconds when the holder took it
    renewed_at: float  # unix seconds of the holder's last renewal
    ttl_s: float

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) > self.renewed_at + self.ttl_s

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        return f"run {self.run_id} on host {self.host}, pid {self.pid}, since {since}"

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "LeaseRecord":
        raw: dict[str, Any] = json.loads(data)
        return cls(**{k: raw[k] for k in ("run_id", "host", "pid", "since", "renewed_at", "ttl_s")})


class _Conflict(Exception):
    """The conditional write lost: the object exists / changed since we read it."""


class _LocalBackend:
    """A lease file on a local (or shared POSIX) filesystem."""

    def __init__(self, uri: str):
        self.path = os.path.abspath(uri)
        self.lock_path = self.path + ".lock"

    def read(self) -> tuple[bytes, str] | None:
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def create(self, data: bytes) -> str:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        temp = self._temp(data)
        try:
            os.link(temp, self.path)  # atomic; fails if the name exists (as O_EXCL would)
        except FileExistsError:
            raise _Conflict() from None
        finally:
            os.remove(temp)
        return hashlib.sha256(data).hexdigest()

    def replace(self, data: bytes, expected_version: str) -> str:
        import fcntl

        with open(self.lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # makes read-compare-replace one step
            current = self.read()
            if current is None or current[1] != expected_version:
                raise _Conflict()
            temp = self._temp(data)
            os.replace(temp, self.path)
        return hashlib.sha256(data).hexdigest()

    def delete(self, expected_version: str) -> None:
        import fcntl

        with open(self.lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.read()
            if current is not None and current[1] == expected_version:
                os.remove(self.path)

    def _temp(self, data: bytes) -> str:
        temp = f"{self.path}.{uuid.uuid4().hex[:8]}.tmp"
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return temp


class _S3Backend:
    """A lease object on S3 (or any store that honours If-None-Match / If-Match on PUT)."""

    def __init__(self, uri: str, storage_options: dict | None):
        self.fs, path = storage.filesystem(uri, storage_options)
        self.bucket, _, self.key = path.partition("/")

    def read(self) -> tuple[bytes, str] | None:
        def get():
            try:
                response = self.fs.call_s3("get_object", Bucket=self.bucket, Key=self.key)
            except FileNotFoundError:
                return None
            body = response["Body"]
            data = _sync_read(self.fs, body)
            return data, response["ETag"]

        return storage.retry(get, what="read the DST lease")

    def create(self, data: bytes) -> str:
        return self._put(data, IfNoneMatch="*")

    def replace(self, data: bytes, expected_version: str) -> str:
        return self._put(data, IfMatch=expected_version)

    def delete(self, expected_version: str) -> None:
        current = self.read()
        if current is not None and current[1] == expected_version:
            storage.retry(self.fs.call_s3, "delete_object", Bucket=self.bucket, Key=self.key,
                          what="release the DST lease")

    def _put(self, data: bytes, **condition: str) -> str:
        def put():
            try:
                return self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=data, **condition)
            except OSError as error:
                if _precondition_failed(error):
                    raise _Conflict() from None
                raise

        # One attempt per call here: the heartbeat has its own retry loop bounded by the
        # lease's expiry, and a retried conditional PUT could report our own success as
        # a conflict.
        return put()["ETag"]


def _sync_read(fs, body) -> bytes:
    from fsspec.asyn import sync

    async def read_all():
        async with body as stream:
            return await stream.read()

    return sync(fs.loop, read_all)


def _precondition_failed(error: BaseException) -> bool:
    cause = error.__cause__
    response = getattr(cause, "response", None) or {}
    return (response.get("Error", {}).get("Code") == "PreconditionFailed"
            or response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412)


class DstLease:
    """``with DstLease(dst, run_id).acquire(): ...``; ``check()`` raises :class:`LeaseLost`
    once the heartbeat found the lease gone."""

    def __init__(self, dst: str, run_id: str, *, ttl_s: float = 120.0, storage_options: dict | None = None):
        self.dst = dst
        self.uri = storage.join(dst, LEASE_NAME)
        self.run_id = run_id
        self.ttl_s = ttl_s
        self.backend = _S3Backend(self.uri, storage_options) if storage.is_remote(self.uri) else _LocalBackend(self.uri)
        self._version: str | None = None
        self._since = 0.0
        self._lost = threading.Event()
        self._lost_reason = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- taking it -----------------------------------------------------------------------------
    def acquire(self, *, wait: bool = False, timeout_s: float | None = None, poll_s: float | None = None) -> "DstLease":
        """Take the lease, or raise :class:`LeaseHeld`; with ``wait`` retry until it is
        free or expired (at most ``timeout_s`` seconds when given)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        poll_s = poll_s if poll_s is not None else min(10.0, max(0.5, self.ttl_s / 4))
        while True:
            holder = self._try_take()
            if holder is None:
                break
            if not wait or (deadline is not None and time.monotonic() + poll_s > deadline):
                raise LeaseHeld(holder, self.dst)
            log.warning("waiting for the DST lease held by %s", holder.describe())
            time.sleep(poll_s)
        self._thread = threading.Thread(target=self._heartbeat, daemon=True, name="dst-lease-heartbeat")
        self._thread.start()
        return self

    def _try_take(self) -> LeaseRecord | None:
        """None when this run now holds the lease, else the live holder."""
        now = time.time()
        self._since = now
        mine = self._record(now)
        current = self.backend.read()
        if current is None:
            try:
                self._version = storage.retry(self.backend.create, mine.to_bytes(), what="take the DST lease")
                return None
            except _Conflict:
                current = self.backend.read()
                if current is None:  # released in between: the next poll takes it
                    return LeaseRecord("(just released)", "?", 0, now, now, self.ttl_s)
                if self._is_mine(current):  # our create landed; only its answer was lost
                    return None
        data, version = current
        holder = _parse(data, fallback_ttl=self.ttl_s)
        if not holder.expired(now):
            return holder
        try:
            self._version = storage.retry(self.backend.replace, mine.to_bytes(), version, what="take over the DST lease")
        except _Conflict:  # someone else renewed or took it first
            current = self.backend.read()
            if current is not None and self._is_mine(current):
                return None
            return _parse(current[0], fallback_ttl=self.ttl_s) if current else holder
        log.warning("took over the DST lease of %s (not renewed for %.0f s)", holder.describe(), now - holder.renewed_at)
        return None

    def _is_mine(self, current: tuple[bytes, str]) -> bool:
        record = _parse(current[0], fallback_ttl=self.ttl_s)
        if record.run_id == self.run_id and record.pid == os.getpid():
            self._version = current[1]
            return True
        return False

    def _record(self, now: float) -> LeaseRecord:
        return LeaseRecord(run_id=self.run_id, host=socket.gethostname(), pid=os.getpid(), since=self._since,
                           renewed_at=now, ttl_s=self.ttl_s)

    # -- keeping it ----------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        last_renewal = time.time()
        while not self._stop.wait(self.ttl_s / 3):
            while not self._stop.is_set():
                now = time.time()
                try:
                    self._version = self.backend.replace(self._record(now).to_bytes(), self._version)
                    last_renewal = now
                    break
                except _Conflict:
                    current = self.backend.read()
                    if current is not None and self._is_mine(current):
                        last_renewal = now  # a retried write whose first answer was lost
                        break
                    who = _parse(current[0], self.ttl_s).describe() if current else "nobody (it was deleted)"
                    return self._mark_lost(f"another run took the DST lease: now held by {who}")
                except Exception as error:
                    # Renewal is retried until the lease would have expired for others.
                    if time.time() > last_renewal + self.ttl_s * 0.9:
                        return self._mark_lost(f"could not renew the DST lease for {self.ttl_s:.0f} s: "
                                               f"{storage._first_line(error)}")
                    log.warning("could not renew the DST lease, retrying: %s", storage._first_line(error))
                    self._stop.wait(min(2.0, self.ttl_s / 10))

    def _mark_lost(self, reason: str) -> None:
        self._lost_reason = reason
        self._lost.set()
        log.error(reason)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def check(self) -> None:
        """Raise :class:`LeaseLost` when this run must stop writing to DST."""
        if self._lost.is_set():
            raise LeaseLost(self._lost_reason)

    # -- giving it back ------------------------------------------------------------------------
    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._version is not None and not self._lost.is_set():
            try:
                self.backend.delete(self._version)
            except Exception as error:  # it expires by itself
                log.warning("could not release the DST lease: %s", storage._first_line(error))
        self._version = None

    def __enter__(self) -> "DstLease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _parse(data: bytes, fallback_ttl: float) -> LeaseRecord:
    try:
        return LeaseRecord.from_bytes(data)
    except (ValueError, KeyError, TypeError):
        # Unreadable (hand-edited?): treat as a holder that stopped renewing long ago.
        return LeaseRecord("(unreadable lease)", "?", 0, 0.0, 0.0, fallback_ttl)


def read_holder(dst: str, storage_options: dict | None = None) -> LeaseRecord | None:
    """Who holds DST's lease now (None when nobody), for messages and tests."""
    uri = storage.join(dst, LEASE_NAME)
    backend = _S3Backend(uri, storage_options) if storage.is_remote(uri) else _LocalBackend(uri)
    current = backend.read()
    return _parse(current[0], 0.0) if current else None
