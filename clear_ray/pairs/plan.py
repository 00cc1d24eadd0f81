"""Which windows of a video become pairs, their ids and seeds (pure functions, no I/O)."""

from __future__ import annotations

import hashlib
import re

import numpy as np

# Bump when the same seed would give different pixels (generator or shard format change):
# it is part of every pair id, so old shards are never mistaken for new ones.
SYNTH_VERSION = "pairs-1"


class TooShort(ValueError):
    """The video has fewer frames than one window."""


def window_starts(num_frames: int, frames: int, per_video: int | None, stride: int | None) -> list[int]:
    """First frames of the windows of a ``num_frames`` video.

    With ``stride``: every ``stride`` frames from 0 (at most ``per_video``); without it:
    ``per_video`` windows spread evenly from the first to the last possible start, so a
    long film gives pairs from all its scenes, not its opening minutes.
    """
    if num_frames < frames:
        raise TooShort(f"too short for one window: {num_frames} frames < {frames}")
    last = num_frames - frames
    if stride is not None:
        starts = list(range(0, last + 1, stride))
        return starts[:per_video] if per_video is not None else starts
    assert per_video is not None
    count = min(per_video, last + 1)
    if count == 1:
        return [0]
    return sorted({int(round(i * last / (count - 1))) for i in range(count)})


def _slug(rel_path: str) -> str:
    stem = rel_path.rsplit(".", 1)[0]
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[-40:] or "video"


def pair_id(rel_path: str, source_fingerprint: str, start: int, frames: int, seed: int) -> str:
    """Stable, readable id: ``<path slug>-<start>-<hash>`` (hash of fingerprint, window, seed)."""
    digest = hashlib.sha256(
        f"{SYNTH_VERSION}\0{rel_path}\0{source_fingerprint}\0{start}\0{frames}\0{seed}".encode()).hexdigest()[:12]
    return f"{_slug(rel_path)}-{start:06d}-{digest}"


def pair_seed(seed: int, rel_path: str, start: int, frames: int) -> int:
    """The RNG seed of one pair: from the job seed, the video's path and the window, not the
    file's fingerprint, so the same footage copied elsewhere gives the same pixels."""
    path_key = int.from_bytes(hashlib.sha256(rel_path.encode()).digest()[:8], "little")
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=(path_key, start, frames))
    return int(sequence.generate_state(1, np.uint64)[0] & np.uint64(2**63 - 1))


def video_split(rel_path: str, default: str, dev_fraction: float) -> str:
    """``dev`` for a ``dev_fraction`` share of videos (by path hash, stable), else ``default``."""
    if dev_fraction <= 0:
        return default
    share = int.from_bytes(hashlib.sha256(f"split\0{rel_path}".encode()).digest()[:8], "little") / 2**64
    return "dev" if share < dev_fraction else default
