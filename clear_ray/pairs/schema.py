"""The pairs dataset's contract: index columns, shard layout, and what ``read_pair`` returns.

Trainers (Stage I, Stage II) code against this file and /work/coord/PAIRS_CONTRACT.md;
change a name here only together with that contract.

Layout under DST (a local directory or ``s3://bucket/prefix``)::

    index.parquet                     one row per pair (written last, atomically)
    shards/<pair_id>/clean.zip        the clean window: one lossless PNG per frame
    shards/<pair_id>/subtitled.zip    the subtitled window, same frames
    shards/<pair_id>/alpha.zip        the exact per-frame text alpha, 8-bit PNG per frame
    shards/<pair_id>/meta.json        the index row + cues, style and provenance (written last:
                                      its existence means the shard is complete)
    _manifest/                        one row per clean input per run, as ``remove`` writes
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INDEX_NAME = "index.parquet"
SHARDS_DIR = "shards"
META_NAME = "meta.json"
FRAME_FILES = {"clean": "clean.zip", "subtitled": "subtitled.zip", "alpha": "alpha.zip"}
SPLITS = ("train", "dev", "test")
MASK_KINDS = ("alpha", "pseudo")

# (column, pyarrow type name) in index order.
INDEX_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pair_id", "string"), ("split", "string"),
    ("source_uri", "string"), ("source_fingerprint", "string"),
    ("start_frame", "int64"), ("frames", "int64"), ("width", "int64"), ("height", "int64"), ("fps", "float64"),
    ("language", "string"), ("style", "string"), ("font", "string"), ("seed", "int64"),
    ("text_fraction", "float64"),
    ("clean_uri", "string"), ("subtitled_uri", "string"), ("alpha_uri", "string"),
    ("mask_kind", "string"),
)
COLUMN_NAMES = tuple(name for name, _ in INDEX_COLUMNS)


def index_schema():
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
    return pa.schema([(name, types[kind]) for name, kind in INDEX_COLUMNS])


@dataclass
class PairFrames:
    """The frames of one pair that ``read_pair`` decoded (all arrays share their T axis)."""

    clean_thwc_u8: np.ndarray
    subtitled_thwc_u8: np.ndarray
    alpha_thw_u8: np.ndarray | None  # exact alpha 0..255; None when unknown (--from-pairs)
    frame_indices: list[int]
