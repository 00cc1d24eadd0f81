"""Rows of the make-pairs Ray Data graph: small, flat, one schema, no pixels.

``kind``: ``window`` (a window to burn, from planning), ``pair`` (a shard written; ``meta``
holds its meta.json text), ``failed`` (the video failed: one-line ``error``), ``planned`` (a video
whose windows are all written already).
"""

from __future__ import annotations

from typing import Any

ROW_DEFAULTS: dict[str, Any] = {
    "kind": "",
    "uri": "",
    "rel_path": "",
    "pair_uri": "",  # --from-pairs: the subtitled video of the clean one at ``uri``
    "fingerprint": "",
    "split": "",
    "pair_id": "",
    "start": 0,
    "start_pts": 0,
    "frames": 0,
    "video_frames": 0,  # frames of the whole clean video (the manifest keeps it for resume)
    "seed": 0,
    "info": "",  # VideoInfo JSON, so the actor decodes without re-reading the header
    "meta": "",
    "error": "",
    "error_kind": "",
    "seconds": 0.0,
}


def make_row(**fields: Any) -> dict[str, Any]:
    unknown = set(fields) - set(ROW_DEFAULTS)
    if unknown:
        raise KeyError(f"unknown row fields {sorted(unknown)}")
    return {**ROW_DEFAULTS, **fields}
