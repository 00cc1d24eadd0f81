"""Where Ray Train keeps a run: a local directory or an S3 prefix (any S3-compatible endpoint).

Ray Train writes checkpoints through a *pyarrow* filesystem, not fsspec: for a custom
endpoint (SeaweedFS, MinIO, R2) it needs ``pyarrow.fs.S3FileSystem(endpoint_override=...)``
and a ``bucket/prefix`` storage path. The same settings give the fsspec options our own
readers and writers use.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from clear_ray import storage as uris
from clear_ray.config import StorageConfig


def runs_uri(output_uri: str) -> str:
    """Ray Train's storage path for a job whose products go to ``output_uri``."""
    return uris.join(output_uri, "runs")


def fsspec_options(settings: StorageConfig) -> dict[str, Any]:
    return settings.s3_storage_options()


def ray_storage(uri: str, settings: StorageConfig) -> tuple[str, Any]:
    """``(storage_path, storage_filesystem)`` for ``RunConfig``.

    Local paths become absolute (Ray Train rejects relative ones); s3:// URIs get an
    explicit pyarrow S3 filesystem built from ``settings``, falling back to the usual
    AWS_* variables, so a custom endpoint works the same on the driver and the workers.
    """
    if not uris.is_remote(uri):
        return os.path.abspath(uri), None
    parsed = urlparse(uri)
    if parsed.scheme not in ("s3", "s3a"):
        raise ValueError(f"training output must be a local path or s3:// URI, got {uri}")
    from pyarrow import fs

    endpoint = settings.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs: dict[str, Any] = {}
    if endpoint:
        endpoint_parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = endpoint_parsed.netloc or endpoint_parsed.path
        kwargs["scheme"] = endpoint_parsed.scheme or "https"
    region = settings.region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if region:
        kwargs["region"] = region
    if settings.anon:
        kwargs["anonymous"] = True
    elif settings.access_key_id is not None and settings.secret_access_key is not None:
        kwargs["access_key"] = settings.access_key_id.get_secret_value()
        kwargs["secret_key"] = settings.secret_access_key.get_secret_value()
    path = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
    return path, fs.S3FileSystem(**kwargs)
