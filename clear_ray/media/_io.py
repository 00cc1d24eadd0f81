"""Opening media for reading and writing, local or through fsspec (s3://...).

PyAV reads Python file objects, so remote inputs are streamed through fsspec with its
read-ahead cache instead of being downloaded. Outputs are written to a temporary name and
moved into place (local) or uploaded with one request (remote) only when complete.
Every failure leaves here as a MediaError subclass with a one-line reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path, PurePosixPath
from typing import Any, Iterator
from urllib.parse import urlparse

from clear_ray.storage import open_for_reading as storage_open, retry as storage_retry

from clear_ray.media.errors import (
    CorruptStream,
    EmptyFile,
    MediaError,
    MissingFile,
    NotAVideo,
    RemoteReadError,
)

# Large enough that demuxing a remote file is a few big range requests, small enough
# that a seek-and-decode of one chunk does not pull much more than it needs.
REMOTE_BLOCK_BYTES = 4 * 1024 * 1024


def is_remote(uri: str | os.PathLike) -> bool:
    text = str(uri)
    return "://" in text and not text.startswith("file://")


def local_path(uri: str | os.PathLike) -> Path:
    text = str(uri)
    return Path(text[len("file://"):] if text.startswith("file://") else text)


def extension_of(uri: str | os.PathLike) -> str:
    """Lower-case extension of the file a URI names (``s3://b/x/Clip.MKV?v=1`` -> ``.mkv``)."""
    text = str(uri)
    path = urlparse(text).path if is_remote(text) else text
    return PurePosixPath(path).suffix.lower()


def _filesystem(uri: str, storage_options: dict[str, Any] | None):
    from clear_ray import storage

    try:
        # Fresh remote clients: a cached s3fs instance in a long-lived Ray worker would
        # answer info()/listings from before the object changed (a re-uploaded input).
        return storage.filesystem(uri, storage_options)
    except Exception as error:  # unknown protocol, missing s3fs, bad options
        raise RemoteReadError(f"cannot reach storage: {type(error).__name__}: {error}", uri) from error


def source_size(uri: str, storage_options: dict[str, Any] | None = None) -> int:
    """Size in bytes of an existing, non-empty file; MissingFile / EmptyFile / RemoteReadError otherwise."""
    if is_remote(uri):
        fs, path = _filesystem(uri, storage_options)
        try:
            info = storage_retry(fs.info, path, what=f"look up {uri}")
        except FileNotFoundError as error:
            raise RemoteReadError("no such object (missing key)", uri) from error
        except PermissionError as error:
            raise RemoteReadError(f"permission denied: {error}", uri) from error
        except Exception as error:  # connection refused, timeouts, botocore errors
            raise RemoteReadError(f"cannot read object: {type(error).__name__}: {error}", uri) from error
        if info.get("type") == "directory":
            raise RemoteReadError("is a prefix (directory), not an object", uri)
        size = int(info.get("size") or 0)
    else:
        path = local_path(uri)
        if not path.exists():
            raise MissingFile("no such file", str(uri))
        if not path.is_file():
            raise MissingFile("not a regular file", str(uri))
        size = path.stat().st_size
    if size == 0:
        raise EmptyFile("file is empty (0 bytes)", str(uri))
    return size


_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "MP4/MOV"), (4, b"moov", "MP4/MOV"), (4, b"mdat", "MP4/MOV"), (4, b"free", "MP4/MOV"),
    (4, b"wide", "MP4/MOV"), (4, b"skip", "MP4/MOV"), (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"RIFF", "AVI"), (0, b"FLV", "FLV"), (0, b"OggS", "Ogg"), (0, b"\x00\x00\x01\xba", "MPEG-PS"),
)


def _container_kind(head: bytes) -> str | None:
    """Which container the first bytes announce, if any (to tell corrupt from not-a-video)."""
    for offset, magic, kind in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return kind
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "MPEG-TS"
    return None


def _read_head(uri: str, storage_options: dict[str, Any] | None, size: int = 512) -> bytes:
    from clear_ray.storage import is_transient

    try:
        if is_remote(uri):
            fs, path = _filesystem(uri, storage_options)
            with storage_open(fs, path) as handle:
                return handle.read(size)
        with open(local_path(uri), "rb") as handle:
            return handle.read(size)
    except Exception as error:
        if is_transient(error):  # unreachable storage must never read as "not a video"
            raise RemoteReadError(f"cannot read object: {type(error).__name__}: {error}", uri) from error
        return b""


@contextlib.contextmanager
def translate_errors(uri: str) -> Iterator[None]:
    """Map PyAV / fsspec exceptions raised while demuxing or decoding to MediaError."""
    import av

    try:
        yield
    except MediaError:
        raise
    except av.error.FFmpegError as error:
        raise CorruptStream(f"undecodable data: {error.strerror or error}", uri) from error
    except EOFError as error:
        raise CorruptStream(f"unexpected end of data: {error}", uri) from error
    except OSError as error:
        if is_remote(uri):
            raise RemoteReadError(f"read failed: {type(error).__name__}: {error}", uri) from error
        raise CorruptStream(f"read failed: {error}", uri) from error


@contextlib.contextmanager
def open_container(uri: str, storage_options: dict[str, Any] | None = None) -> Iterator[Any]:
    """An ``av.container.InputContainer`` for ``uri``; closed (with its file) on exit."""
    import av

    source_size(uri, storage_options)
    handle = None
    try:
        if is_remote(uri):
            fs, path = _filesystem(uri, storage_options)
            try:
                handle = storage_open(fs, path, block_size=REMOTE_BLOCK_BYTES, cache_type="readahead")
            except Exception as error:
                raise RemoteReadError(f"cannot open object: {type(error).__name__}: {error}", uri) from error
            target: Any = handle
        else:
            target = str(local_path(uri))
        try:
            container = av.open(target, "r", metadata_errors="replace")
        except av.error.InvalidDataError as error:
            kind = _container_kind(_read_head(uri, storage_options))
            if kind is None:
                raise NotAVideo("not a media file: no demuxer recognises its bytes", uri) from error
            raise CorruptStream(f"{kind} container is truncated or corrupt (cannot read its header)",
                                uri) from error
        except av.error.FFmpegError as error:
            raise NotAVideo(f"cannot open as media: {error.strerror or error}", uri) from error
        except OSError as error:
            if is_remote(uri):
                raise RemoteReadError(f"read failed: {type(error).__name__}: {error}", uri) from error
            raise
        try:
            with translate_errors(uri):
                yield container
        finally:
            container.close()
    finally:
        if handle is not None:
            handle.close()


@contextlib.contextmanager
def atomic_output(out_uri: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> Iterator[Path]:
    """Yield a local temporary path to write; on success it becomes ``out_uri``.

    Local: a hidden temp name in the destination directory, then ``os.replace`` (atomic on
    one filesystem). Remote: a local temp file, then one upload to the final key (S3 shows
    an object only once its PUT / multipart upload completes). On failure nothing remains.
    """
    out_text = str(out_uri)
    suffix = extension_of(out_text)
    if is_remote(out_text):
        scratch = Path(tempfile.mkdtemp(prefix="clear-ray-out-"))
        try:
            temp = scratch / f"output{suffix}"
            yield temp
            fs, path = _filesystem(out_text, storage_options)
            try:
                storage_retry(fs.put_file, str(temp), path, what=f"upload {out_text}")
            except Exception as error:
                raise RemoteReadError(f"upload failed: {type(error).__name__}: {error}", out_text) from error
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    final = local_path(out_text)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.with_name(f".{final.stem}.tmp-{uuid.uuid4().hex[:8]}{suffix}")
    try:
        yield temp
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)
