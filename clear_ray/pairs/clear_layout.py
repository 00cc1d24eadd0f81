"""CLEAR's own dataset layout, both ways.

CLEAR's training scripts read ``clean/NAME.mp4`` next to ``subtitled/NAME_with_subtitle.mp4``.

- ``--from-pairs``: index such a dataset in place (no pixels copied). The index rows point
  at the two videos, ``alpha_uri`` is None and ``mask_kind`` is ``pseudo``: the masks are
  derived when read, by ``clear_ray.pairs.pseudo_labels`` (CLEAR Stage I's rule). Each
  window gets a ``meta.json`` shard (its pseudo-label text fraction), so resume and the
  index work exactly as for burnt-in pairs.
- ``--export-clear-layout DIR``: write our pairs that way, both videos of a pair encoded
  with one x264 setting (``output.crf``/``output.preset``), so their difference is the
  text plus the same codec noise on both sides.
"""

from __future__ import annotations

import posixpath
from typing import Any

from clear_ray import storage
from clear_ray.catalog import InputVideo, list_inputs
from clear_ray.pairs.stages import BurnWindows

SUBTITLED_SUFFIX = "_with_subtitle"


def subtitled_name(clean_rel_path: str) -> str:
    stem, ext = posixpath.splitext(clean_rel_path)
    return f"{stem}{SUBTITLED_SUFFIX}{ext}"


def list_clear_layout(src: str, extensions, storage_options: dict | None) -> tuple[list[InputVideo], dict[str, str]]:
    """(clean videos, clean uri -> subtitled uri). A clean video without its subtitled
    partner is still listed, so the job reports it as failed instead of ignoring it."""
    import dataclasses
    import hashlib

    from clear_ray.catalog import CatalogError

    clean_root, subtitled_root = storage.join(src, "clean"), storage.join(src, "subtitled")
    if not storage.exists(clean_root, storage_options):
        raise CatalogError(f"--from-pairs: {clean_root} does not exist (CLEAR's layout is "
                           "clean/NAME.mp4 + subtitled/NAME_with_subtitle.mp4)")
    clean = list_inputs(clean_root, extensions, storage_options=storage_options)
    subtitled = {v.rel_path: v for v in list_inputs(subtitled_root, extensions, storage_options=storage_options)} \
        if storage.exists(subtitled_root, storage_options) else {}
    videos, partners = [], {}
    for video in clean:
        partner = subtitled.get(subtitled_name(video.rel_path))
        if partner is None:
            videos.append(video)
            partners[video.uri] = storage.join(subtitled_root, subtitled_name(video.rel_path))
            continue
        # Either file changing makes a new version of the pair.
        both = hashlib.sha256(f"{video.fingerprint}\0{partner.fingerprint}".encode()).hexdigest()[:20]
        videos.append(dataclasses.replace(video, fingerprint=both))
        partners[video.uri] = partner.uri
    return videos, partners


class PseudoLabelWindows(BurnWindows):
    """Actor: decode a window of both videos, measure its pseudo-label text, write meta.json."""

    def _burn_and_write(self, row: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from clear_ray.media import VideoInfo, decode
        from clear_ray.pairs.pseudo import pseudo_labels

        info = VideoInfo.model_validate_json(row["info"])
        start, frames = int(row["start"]), int(row["frames"])
        clean = decode(row["uri"], start, start + frames, start_pts=int(row["start_pts"]), info=info,
                       storage_options=self.options, threads=1)
        subtitled = decode(row["pair_uri"], start, start + frames, storage_options=self.options, threads=1)
        mask, keep = pseudo_labels(clean, subtitled)
        meta = {
            "pair_id": row["pair_id"], "split": row["split"], "source_uri": row["uri"],
            "source_fingerprint": row["fingerprint"], "start_frame": start, "frames": frames,
            "width": int(clean.shape[2]), "height": int(clean.shape[1]), "fps": float(info.fps_fraction),
            "language": "", "style": "", "font": "", "seed": int(row["seed"]),
            "text_fraction": float(mask[keep].mean()) if keep.any() else 0.0,
            "clean_uri": row["uri"], "subtitled_uri": row["pair_uri"], "alpha_uri": None, "mask_kind": "pseudo",
            "format": "video", "rel_path": row["rel_path"], "fps_rational": info.fps,
            "kept_frames": int(np.count_nonzero(keep)),
        }
        self.write_meta(meta)
        return meta


class ExportPair:
    """Callable for ``Dataset.map``: one index row -> CLEAR's two mp4 files (skipped when present)."""

    def __init__(self, config):
        self.config = config
        self.options = config.storage.s3_storage_options()

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        import tempfile
        from pathlib import Path

        from clear_ray.pairs.reader import read_pair
        from clear_ray.synth.video_io import EncoderSettings, write_video

        out = self.config.export_clear_layout
        targets = {"clean": storage.join(out, "clean", f"{row['pair_id']}.mp4"),
                   "subtitled": storage.join(out, "subtitled", f"{row['pair_id']}{SUBTITLED_SUFFIX}.mp4")}
        if all(storage.exists(uri, self.options) for uri in targets.values()):
            return {"pair_id": row["pair_id"], "written": 0}
        pair = read_pair(row, storage_options=self.options)
        settings = EncoderSettings(crf=self.config.output.crf, preset=self.config.output.preset)
        from fractions import Fraction

        fps = Fraction(row["fps"]).limit_denominator(1001 * 1000)
        with tempfile.TemporaryDirectory(prefix="clear-export-") as scratch:
            for name, frames in (("clean", pair.clean_thwc_u8), ("subtitled", pair.subtitled_thwc_u8)):
                if frames.shape[1] % 2 or frames.shape[2] % 2:  # yuv420p needs even sides
                    frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]
                local = write_video(Path(scratch) / f"{name}.mp4", frames, fps, settings)
                storage.write_bytes_atomic(targets[name], local.read_bytes(), self.options)
        return {"pair_id": row["pair_id"], "written": 1}


def export_clear_layout(config) -> int:
    """Write every indexed burnt-in pair under ``config.export_clear_layout``; returns files written."""
    import ray.data

    from clear_ray.pairs.job import connect
    from clear_ray.pairs.reader import read_index

    rows = [r for r in read_index(config.dst, config.storage.s3_storage_options()) if r["mask_kind"] == "alpha"]
    if not rows:
        return 0
    connect(config)
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map(ExportPair(config), num_cpus=1)
    return sum(int(r["written"]) for r in dataset.iter_rows())
