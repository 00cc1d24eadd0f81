"""Planar pictures as numpy views, and copies of them that the encoder may patch."""

from __future__ import annotations

from typing import Any

import numpy as np


def plane_arrays(video_frame: Any) -> list[np.ndarray]:
    """Views (no copy) of a planar frame's planes, each ``(height, width)``: uint8 for
    8-bit samples, uint16 (little-endian formats only) for 9 to 16 bits."""
    wide = max(component.bits for component in video_frame.format.components) > 8
    dtype = np.dtype("<u2") if wide else np.dtype(np.uint8)
    return [np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // dtype.itemsize)[:, :plane.width]
            for plane in video_frame.planes]


def copy_picture(video_frame: Any) -> Any:
    """An independent copy of a planar picture's samples (for the encoder: frame
    properties that only RGB conversion reads, such as chroma siting, are not kept)."""
    import av

    copy = av.VideoFrame(video_frame.width, video_frame.height, video_frame.format.name)
    for target_hw, source_hw in zip(plane_arrays(copy), plane_arrays(video_frame)):
        np.copyto(target_hw, source_hw)
    return copy
