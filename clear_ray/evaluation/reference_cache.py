"""The cache of the rows that do not depend on the remover under test.

The ``input`` row (do nothing) and the true-mask ``oracle-telea`` row of a clip, with the
VFID features of the clean clip and of those two, are the same for every backend: a second
``bench run`` with another remover reads them from ``DIR/cache/reference-rows.json``.

Each clip's entry is keyed by a fingerprint of
- the clip: its manifest entry and the bytes of its subtitled, clean and alpha files
  (so a rebuilt or edited clip is scored again, and only that clip),
- the metric code: the source of the modules that compute the rows (any edit to them
  invalidates every entry: no version number to forget to bump) and the OpenCV and NumPy
  versions (Telea, DIS flow and the SSIM blur are theirs),
- the perceptual metrics' settings and weight files (``PerceptualConfig.fingerprint``).
The file is rewritten atomically (temp name -> final name) after each run, merged with what
is there, so entries of other splits and settings stay.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

CACHE_DIR = "cache"
CACHE_NAME = "reference-rows.json"
CACHE_FORMAT = "clear-ray-bench-reference/1"
# The modules whose code decides the cached numbers.
METRIC_MODULES = ("metrics", "clip_scoring", "perceptual", "dists", "vfid", "i3d", "frechet")


def cache_path(bench_dir: str | Path) -> Path:
    return Path(bench_dir) / CACHE_DIR / CACHE_NAME


def metric_code_version() -> str:
    import cv2
    import numpy as np

    digest = hashlib.sha256(f"cv2 {cv2.__version__} numpy {np.__version__}".encode())
    here = Path(__file__).parent
    for name in METRIC_MODULES:
        digest.update(name.encode())
        digest.update((here / f"{name}.py").read_bytes())
    return digest.hexdigest()[:16]


def clip_fingerprint(bench_dir: str | Path, clip: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(clip, sort_keys=True).encode())
    for name in ("subtitled", "clean", "alpha"):
        with open(Path(bench_dir) / clip["paths"][name], "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:24]


def entry_key(bench_dir: str | Path, clip: dict[str, Any], code_version: str, perceptual: dict) -> str:
    payload = json.dumps({"clip": clip_fingerprint(bench_dir, clip), "code": code_version,
                          "perceptual": perceptual}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def load(bench_dir: str | Path) -> dict[str, dict[str, Any]]:
    """clip id -> {"key", "rows", "vfid"}; an unreadable or foreign file counts as empty."""
    path = cache_path(bench_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("clips"), dict):
        return {}
    return data["clips"]


def lookup(entries: dict[str, dict[str, Any]], clip_id: str, key: str) -> dict[str, Any] | None:
    entry = entries.get(clip_id)
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    return {"rows": entry["rows"], "vfid": entry.get("vfid", {})}


def store(bench_dir: str | Path, fresh: dict[str, dict[str, Any]]) -> Path:
    """Merge ``fresh`` (clip id -> {"key", "rows", "vfid"}) into the cache file, atomically."""
    path = cache_path(bench_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = load(bench_dir)
    entries.update(fresh)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    # NaN is legal here (Python's json reads it back), and a metric that is NaN must stay NaN.
    temporary.write_text(json.dumps({"format": CACHE_FORMAT, "clips": entries}, sort_keys=True) + "\n",
                         encoding="utf-8")
    os.replace(temporary, path)
    return path
