"""A side-by-side (source | output) video with the source's audio, for ``--comparison``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from clear_ray.media.decode import iter_frames
from clear_ray.media.encode import SegmentEncoder
from clear_ray.media.errors import MediaError
from clear_ray.media.mux import mux
from clear_ray.media.probe import inspect


def write_comparison(source_uri: str, output_uri: str, out_uri: str, *, storage_options: dict | None = None,
                     crf: int = 20, preset: str = "medium", threads: int = 0) -> None:
    """Write ``out_uri``: each frame is the source frame left, the output frame right
    (display-oriented), at the source's timestamps, with the source's audio and subtitles.
    Streams both inputs frame by frame; atomic like every output."""
    source_info, source_pts = inspect(source_uri, storage_options=storage_options)
    output_info, output_pts = inspect(output_uri, storage_options=storage_options)
    if output_info.num_frames != source_info.num_frames:
        raise MediaError(f"output has {output_info.num_frames} frames, source {source_info.num_frames}", output_uri)
    if (output_info.width, output_info.height) != (source_info.width, source_info.height):
        raise MediaError(f"output is {output_info.width}x{output_info.height}, "
                         f"source {source_info.width}x{source_info.height}", output_uri)
    width, height = source_info.width, source_info.height
    side_info = source_info.model_copy(update={"width": 2 * width, "coded_width": 2 * width, "height": height,
                                               "coded_height": height, "rotation": 0})
    count = source_info.num_frames
    scratch = Path(tempfile.mkdtemp(prefix="clear-ray-comparison-"))
    try:
        segment = scratch / "side_by_side.mp4"
        with SegmentEncoder(segment, side_info, crf=crf, preset=preset, threads=threads) as encoder:
            pairs = zip(iter_frames(source_uri, 0, count, info=source_info, timestamps=source_pts,
                                    storage_options=storage_options),
                        iter_frames(output_uri, 0, count, info=output_info, timestamps=output_pts,
                                    storage_options=storage_options))
            for before, after in pairs:
                encoder.write(before.pts, np.concatenate([before.rgb_hwc_u8, after.rgb_hwc_u8], axis=1))
        mux([segment], source_uri, out_uri, side_info, storage_options=storage_options)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
