"""The rows that flow through the Ray Data graph: small, flat, no pixels.

All rows share one schema so Arrow blocks concatenate cleanly. ``kind`` says what a row is:
- ``plan``: one per video, after probing; ``detail`` holds JSON (staged chunks, done segments).
  Chunk rows carry the VideoInfo JSON in ``detail`` so the actor need not re-read headers.
- ``chunk``: one window to remove subtitles from; after the actor, ``seconds`` is its
  processing time, ``node_id`` the Ray node it ran on, ``reused`` whether its result was
  found already staged (then it was not computed again).
- ``failed``: the video failed (``error`` is one line, ``error_kind`` input/transient).
"""

from __future__ import annotations

from typing import Any

ROW_DEFAULTS: dict[str, Any] = {
    "kind": "",
    "video_key": "",  # InputVideo.key
    "input_uri": "",
    "staging_root": "",
    "chunk_index": -1,
    "start": 0,
    "stop": 0,
    "pad_before": 0,
    "pad_after": 0,
    "start_pts": 0,
    "error": "",
    "error_kind": "",
    "seconds": 0.0,
    "node_id": "",
    "reused": False,
    "detail": "",  # JSON text: plan rows carry resume state, chunk rows the VideoInfo
}


def make_row(**fields: Any) -> dict[str, Any]:
    unknown = set(fields) - set(ROW_DEFAULTS)
    if unknown:
        raise KeyError(f"unknown row fields {sorted(unknown)}")
    return {**ROW_DEFAULTS, **fields}


def one_line(error: BaseException | str) -> str:
    """A single line naming the problem; tracebacks belong in logs, not the manifest."""
    text = str(error).strip() or type(error).__name__
    first = text.splitlines()[0]
    if isinstance(error, BaseException) and type(error).__name__ not in first and not _is_media_error(error):
        first = f"{type(error).__name__}: {first}"
    return first[:500]


def _is_media_error(error: BaseException) -> bool:
    return any(cls.__name__ == "MediaError" for cls in type(error).__mro__)
