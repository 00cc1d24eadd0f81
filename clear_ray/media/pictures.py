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

    copy = defined_padding(av.VideoFrame(video_frame.width, video_frame.height, video_frame.format.name))
    for target_hw, source_hw in zip(plane_arrays(copy), plane_arrays(video_frame)):
        np.copyto(target_hw, source_hw)
    return copy


def defined_padding(video_frame: Any) -> Any:
    """``video_frame`` (one we allocated, never the decoder's) with the bytes between each
    row's end and its line size set to 0. x264's row copy reads past the row end (its SIMD
    copies whole vectors) and those bytes take part in its analysis: left as they come
    from the allocator (whatever an earlier, freed frame held there, which depends on
    thread timing) they made the same input give different bytes from run to run.
    A decoder's pictures are left alone: their padding holds decoded macroblock pixels,
    the same in every run, that later pictures may predict from."""
    sample_bytes = 2 if max(component.bits for component in video_frame.format.components) > 8 else 1
    for plane in video_frame.planes:
        rows_hw = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        rows_hw[:, plane.width * sample_bytes:] = 0
    return video_frame
