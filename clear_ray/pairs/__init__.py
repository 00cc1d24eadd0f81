"""Training pairs: ``clear-ray make-pairs`` writes them, the Stage I / II trainers read them.

Light at import (numpy only). The contract (see ``schema``): ``read_index(uri)`` ->
rows, ``read_pair(row, frame_indices)`` -> ``PairFrames``, ``pseudo_labels(clean,
subtitled)`` -> (mask, keep). The job itself is ``clear_ray.pairs.job.run_make_pairs``.
"""

from clear_ray.pairs.pseudo import pseudo_labels
from clear_ray.pairs.reader import read_index, read_pair
from clear_ray.pairs.schema import COLUMN_NAMES, INDEX_COLUMNS, PairFrames, index_schema

__all__ = ["COLUMN_NAMES", "INDEX_COLUMNS", "PairFrames", "index_schema", "pseudo_labels", "read_index",
           "read_pair"]
