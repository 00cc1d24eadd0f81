"""What trainers call: ``read_index`` (the Parquet index) and ``read_pair`` (frames of one pair)."""

from __future__ import annotations

import io
from typing import Any, Sequence

from clear_ray import storage
from clear_ray.pairs.frame_archive import read_frames
from clear_ray.pairs.schema import COLUMN_NAMES, INDEX_NAME, PairFrames


def index_uri(dataset_uri: str) -> str:
    """The index of a dataset directory (or the index file itself when given one)."""
    return dataset_uri if dataset_uri.endswith(".parquet") else storage.join(dataset_uri, INDEX_NAME)


def read_index(uri: str, storage_options: dict | None = None) -> list[dict[str, Any]]:
    """Every row of a pairs index (``DST`` or ``DST/index.parquet``), as dicts, in pair_id order."""
    import pyarrow.parquet as pq

    location = index_uri(uri)
    if not storage.exists(location, storage_options):
        raise FileNotFoundError(f"no pairs index at {location} (run `clear-ray make-pairs` first)")
    table = pq.read_table(io.BytesIO(storage.read_bytes(location, storage_options)))
    missing = [name for name in COLUMN_NAMES if name not in table.column_names]
    if missing:
        raise ValueError(f"{location} is not a pairs index (missing columns: {', '.join(missing)})")
    return table.select(list(COLUMN_NAMES)).to_pylist()


def read_pair(row: dict[str, Any], frame_indices: Sequence[int] | None = None,
              storage_options: dict | None = None) -> PairFrames:
    """The clean, subtitled and (when known) alpha frames of one index row.

    ``frame_indices`` are window-relative (0 .. frames-1); None reads all. Only those frames
    are fetched and decoded. For rows from ``--from-pairs`` (``alpha_uri`` None) the alpha is
    None: derive masks with ``clear_ray.pairs.pseudo_labels``.
    """
    if row.get("clean_uri", "").endswith(".zip"):
        clean, indices = read_frames(row["clean_uri"], frame_indices, storage_options)
        subtitled, _ = read_frames(row["subtitled_uri"], indices, storage_options)
    else:  # a video pair indexed in place (--from-pairs)
        clean, indices = _read_video_frames(row["clean_uri"], row, frame_indices, storage_options)
        subtitled, _ = _read_video_frames(row["subtitled_uri"], row, indices, storage_options)
    alpha = None
    if row.get("alpha_uri"):
        alpha, _ = read_frames(row["alpha_uri"], indices, storage_options)
    return PairFrames(clean_thwc_u8=clean, subtitled_thwc_u8=subtitled, alpha_thw_u8=alpha, frame_indices=indices)


def _read_video_frames(uri: str, row: dict[str, Any], frame_indices: Sequence[int] | None,
                       storage_options: dict | None):
    """Frames of a window of an encoded video: decode the span the indices cover once."""
    import numpy as np

    from clear_ray.media import decode

    start, count = int(row["start_frame"]), int(row["frames"])
    indices = list(range(count)) if frame_indices is None else [int(i) for i in frame_indices]
    if not indices:
        raise ValueError("no frames requested")
    if min(indices) < 0 or max(indices) >= count:
        raise IndexError(f"frame indices must lie in [0, {count}), got {min(indices)}..{max(indices)}")
    low, high = min(indices), max(indices) + 1
    span = decode(uri, start + low, start + high, storage_options=storage_options)
    return np.ascontiguousarray(span[[i - low for i in indices]]), indices
