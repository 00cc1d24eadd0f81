"""The catalog: which videos SRC holds, where each one's output goes, and its fingerprint.

Listing is one recursive (paginated) listing with details, so 10,000 objects cost a few
list calls and no per-object request on the driver; probing the videos happens later,
in parallel Ray Data tasks.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import logging
import os
import posixpath
import stat
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from clear_ray import storage

log = logging.getLogger(__name__)

# Our own bookkeeping under DST; never treated as inputs when DST lies inside SRC.
RESERVED_DIRS = ("_manifest", "_staging")


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class InputVideo:
    uri: str  # as the user addresses it (local path or s3://...)
    rel_path: str  # path relative to SRC's root, '/'-separated
    size: int
    version: str  # etag and/or mtime: changes when the object changes
    fingerprint: str  # stat-based by default; content hash when configured

    def to_row(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def key(self) -> str:
        """Stable id of this input *version*: names its staging directory."""
        return hashlib.sha256(f"{self.uri}\0{self.fingerprint}".encode()).hexdigest()[:20]


def list_inputs(src: str, extensions: Iterable[str], *, storage_options: dict | None = None,
                exclude_prefix: str | None = None) -> list[InputVideo]:
    """Every video under ``src`` (a file, a directory listed recursively, or a glob).

    ``exclude_prefix`` (the job's DST) is skipped when it lies inside SRC. Sorted by
    relative path so runs are reproducible.
    """
    extensions = tuple(e.lower() for e in extensions)
    fs, path = storage.filesystem(src, storage_options)
    root, listing = storage.retry(_list, fs, path, src, what=f"list SRC {src}")

    excluded = storage.filesystem(exclude_prefix, storage_options)[1].rstrip("/") + "/" if exclude_prefix else None
    videos = []
    for name, info in listing.items():
        if not name.lower().endswith(extensions):
            continue
        if info.get("islink") and not storage.is_remote(src):
            info = _link_target_info(name, info)
        if info.get("type") != "file":
            if info.get("islink"):
                log.warning("skipping %s: a link to no file", name)
            continue
        if excluded and (name + "/").startswith(excluded):
            continue
        rel_path = posixpath.relpath(name, root) if root else name
        parts = rel_path.split("/")
        # Hidden files are partial writes in progress (ours or other tools'), never inputs.
        if any(part in RESERVED_DIRS for part in parts[:-1]) or parts[-1].startswith("."):
            continue
        version = _version_of(info)
        size = int(info.get("size") or 0)
        fingerprint = hashlib.sha256(f"stat\0{size}\0{version}".encode()).hexdigest()[:20]
        videos.append(InputVideo(uri=storage.to_uri(fs, name), rel_path=rel_path, size=size,
                                 version=version, fingerprint=fingerprint))
    return sorted(videos, key=lambda video: video.rel_path)


def _link_target_info(name: str, info: dict[str, Any]) -> dict[str, Any]:
    """A local symbolic link (fsspec lists it as type "other"): an input under the link's
    name when it points to a file, with the target's size and mtime, so that a changed
    target is processed again. Libraries of links into other disks are common."""
    try:
        target = os.stat(name)  # follows the link
    except OSError:  # a broken link
        return info
    if not stat.S_ISREG(target.st_mode):
        return info
    return {**info, "type": "file", "size": target.st_size, "mtime": target.st_mtime}


def _list(fs, path: str, src: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """``(root, {name: info})``; ``info`` (not isfile/isdir, which answer False when the
    server cannot be reached) so that an outage is retried, never read as "no SRC"."""
    if globlib.has_magic(path):
        return _glob_root(path), fs.glob(path, detail=True)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise CatalogError(f"SRC {src} does not exist (no such file, directory or prefix)") from None
    if info.get("type") == "file":
        return posixpath.dirname(path), {path: info}
    return path, fs.find(path, detail=True)


def content_fingerprint(uri: str, *, storage_options: dict | None = None, block_size: int = 8 << 20) -> str:
    """Hash of the object's bytes (streamed); for stores whose etag/mtime are unreliable."""
    fs, path = storage.filesystem(uri, storage_options)

    def read_all() -> str:
        digest = hashlib.sha256()
        with fs.open(path, "rb", block_size=block_size) as handle:
            while chunk := handle.read(block_size):
                digest.update(chunk)
        return "sha256-" + digest.hexdigest()[:20]

    return storage.retry(read_all, what=f"hash {uri}")


def output_uri_for(video: InputVideo, dst: str, extension: str) -> str:
    """DST mirrors SRC's relative paths; the extension follows the output container."""
    stem, _ = posixpath.splitext(video.rel_path)
    return storage.join(dst, stem + extension)


def _glob_root(pattern: str) -> str:
    parts = pattern.split("/")
    fixed = []
    for part in parts:
        if globlib.has_magic(part):
            break
        fixed.append(part)
    return "/".join(fixed)


def _version_of(info: dict[str, Any]) -> str:
    # S3: ETag changes with content, LastModified with every upload; local: mtime.
    parts = []
    for field in ("ETag", "etag", "LastModified", "mtime", "last_modified", "generation", "md5Hash"):
        value = info.get(field)
        if value is not None:
            parts.append(f"{field}={value}")
    return ";".join(parts)
