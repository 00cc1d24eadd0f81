"""The two Ray Data stages of make-pairs: plan windows (flat_map), burn + write shards (actor pool)."""

from __future__ import annotations

import json
import time
from typing import Any

from clear_ray import storage
from clear_ray.pairs.config import MakePairsConfig
from clear_ray.pairs.plan import TooShort, pair_id, pair_seed, window_starts
from clear_ray.pairs.rows import make_row
from clear_ray.pairs.schema import FRAME_FILES, META_NAME, SHARDS_DIR
from clear_ray.pipeline.rows import one_line


def error_kind(error: BaseException) -> str:
    """'input' when the clean file itself is unusable (retrying cannot help), else 'transient'."""
    from clear_ray.media import MediaError, RemoteReadError

    if isinstance(error, (TooShort, PairMismatch)):
        return "input"
    if isinstance(error, MediaError) and not isinstance(error, RemoteReadError):
        return "input"
    return "transient"


def shard_uri(dst: str, pid: str, name: str = "") -> str:
    return storage.join(dst, SHARDS_DIR, pid, name) if name else storage.join(dst, SHARDS_DIR, pid)


class PairMismatch(ValueError):
    """--from-pairs: the clean and subtitled videos of a pair do not line up."""


class PlanWindows:
    """Callable for ``Dataset.flat_map``: one clean video in, its not-yet-written windows out."""

    def __init__(self, config: MakePairsConfig, done_pair_ids: frozenset[str]):
        self.config = config
        self.done = done_pair_ids
        self.options = config.storage.s3_storage_options()

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        from clear_ray.media import inspect

        base = {k: row[k] for k in ("uri", "rel_path", "fingerprint", "split", "pair_uri")}
        windows = self.config.windows
        try:
            info, pts = inspect(row["uri"], storage_options=self.options, max_pixels=self.config.output.max_pixels)
            num_frames = info.num_frames
            if row["pair_uri"]:  # --from-pairs: windows both videos hold, at one frame size
                partner, _ = inspect(row["pair_uri"], storage_options=self.options,
                                     max_pixels=self.config.output.max_pixels)
                if (partner.width, partner.height) != (info.width, info.height):
                    raise PairMismatch(f"subtitled video is {partner.width}x{partner.height}, clean is "
                                       f"{info.width}x{info.height}")
                num_frames = min(num_frames, partner.num_frames)
            starts = window_starts(num_frames, windows.frames, windows.per_video, windows.stride)
        except Exception as error:  # recorded on the video; the other videos go on
            return [make_row(kind="failed", error=one_line(error), error_kind=error_kind(error), **base)]
        info_json = info.model_dump_json()
        base["video_frames"] = info.num_frames
        rows = []
        for start in starts:
            pid = pair_id(row["rel_path"], row["fingerprint"], start, windows.frames, self.config.seed)
            if pid in self.done and not self.config.force:
                continue
            rows.append(make_row(kind="window", pair_id=pid, start=start, start_pts=int(pts[start]),
                                 frames=windows.frames, info=info_json,
                                 seed=pair_seed(self.config.seed, row["rel_path"], start, windows.frames), **base))
        # A video whose windows are all written still reports in, so the driver can close it.
        return rows or [make_row(kind="planned", **base)]


class BurnWindows:
    """Actor for ``map_batches``: decode a window, burn subtitles in, write its shard."""

    def __init__(self, config: MakePairsConfig):
        import cv2

        cv2.setNumThreads(1)  # one actor per core; OpenCV's own pool would oversubscribe
        self.config = config
        self.options = config.storage.s3_storage_options()

    def __call__(self, batch):
        import pandas as pd

        out = [self._one(row) for row in batch.to_dict("records")]
        return pd.DataFrame(out)

    def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        if row["kind"] != "window":
            return row
        base = {k: row[k] for k in ("uri", "rel_path", "fingerprint", "split", "pair_id", "start", "frames", "seed",
                                   "video_frames", "pair_uri")}
        started = time.perf_counter()
        try:
            meta = self._burn_and_write(row)  # subclasses: another way to make the shard
        except Exception as error:
            return make_row(kind="failed", error=f"window at frame {row['start']}: {one_line(error)}",
                            error_kind=error_kind(error), **base)
        return make_row(kind="pair", meta=json.dumps(meta), seconds=time.perf_counter() - started, **base)

    def write_meta(self, meta: dict[str, Any]) -> None:
        # meta.json last: its existence marks the shard complete (resume skips it).
        storage.write_bytes_atomic(shard_uri(self.config.dst, meta["pair_id"], META_NAME),
                                   json.dumps(meta, ensure_ascii=False, sort_keys=True).encode(), self.options)

    def _burn_and_write(self, row: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from clear_ray.media import VideoInfo, decode
        from clear_ray.pairs.frame_archive import FORMAT, encode_frames
        from clear_ray.synth.windows import burn_window

        info = VideoInfo.model_validate_json(row["info"])
        start, frames = int(row["start"]), int(row["frames"])
        clean = decode(row["uri"], start, start + frames, start_pts=int(row["start_pts"]), info=info,
                       storage_options=self.options, threads=1)
        if clean.shape[0] != frames:
            raise RuntimeError(f"decoded {clean.shape[0]} frames, expected {frames}")
        synthesis = self.config.synthesis
        burnt = burn_window(np.random.default_rng(int(row["seed"])), clean, info.fps_fraction,
                            synthesis.languages, row["split"], synthesis.text_free_fraction)
        pid = row["pair_id"]
        uris = {name: shard_uri(self.config.dst, pid, file) for name, file in FRAME_FILES.items()}
        for name, array in (("clean", clean), ("subtitled", burnt.subtitled_thwc_u8), ("alpha", burnt.alpha_thw_u8)):
            storage.write_bytes_atomic(uris[name], encode_frames(array), self.options)
        _, height, width, _ = clean.shape
        face = burnt.face
        meta = {
            "pair_id": pid, "split": row["split"], "source_uri": row["uri"], "source_fingerprint": row["fingerprint"],
            "start_frame": start, "frames": frames, "width": int(width), "height": int(height),
            "fps": float(info.fps_fraction), "language": burnt.language,
            "style": burnt.style.key if burnt.style else "",
            "font": f"{face.file_name}#{face.family}" if face else "", "seed": int(row["seed"]),
            "text_fraction": float(np.count_nonzero(burnt.alpha_thw_u8)) / burnt.alpha_thw_u8.size,
            "clean_uri": uris["clean"], "subtitled_uri": uris["subtitled"], "alpha_uri": uris["alpha"],
            "mask_kind": "alpha",
            # provenance beyond the index
            "format": FORMAT, "rel_path": row["rel_path"], "fps_rational": info.fps,
            "cues": [{"start_s": c.start_s, "end_s": c.end_s, "text": c.text, "lines": list(c.lines)}
                     for c in burnt.cues],
            "style_detail": burnt.style.to_json() if burnt.style else None,
            "text_frames": int(np.count_nonzero(burnt.alpha_thw_u8.reshape(frames, -1).max(axis=1))),
        }
        self.write_meta(meta)
        return meta
