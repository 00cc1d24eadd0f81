"""Shared by the make-pairs tests: a config builder and shard-level checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clear_ray.config import load_config
from clear_ray.pairs.config import MakePairsConfig


def pairs_config(src: str, dst: str, **overrides) -> MakePairsConfig:
    settings = {"src": src, "dst": dst, "windows.frames": 17, "windows.per_video": 2, "quiet": True}
    settings.update(overrides)
    return load_config(MakePairsConfig, env={}, overrides=settings)


def shard_files(dst: Path) -> dict[str, tuple[int, int]]:
    """Every shard file -> (inode, mtime_ns): a rewritten file changes both."""
    return {str(p.relative_to(dst)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in (dst / "shards").glob("*/*") if p.is_file()}


def assert_alpha_is_the_difference(pair) -> None:
    """Every changed pixel is under the alpha; almost every alpha pixel changed (a text pixel
    can match its background by chance, e.g. white fill over white)."""
    changed = np.any(pair.clean_thwc_u8 != pair.subtitled_thwc_u8, axis=-1)
    covered = pair.alpha_thw_u8 > 0
    assert not (changed & ~covered).any(), "pixels changed outside the alpha"
    if covered.any():
        assert (changed & covered).sum() >= 0.97 * covered.sum(), (changed & covered).sum() / covered.sum()
