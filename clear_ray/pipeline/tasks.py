"""Ray tasks the driver dispatches per video: stitch one segment, mux the final file.

Both read the video's ``plan.json`` and staged pieces from its staging directory, so a
task can run on any node and be retried; each writes its result atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Any

from clear_ray import storage
from clear_ray.config import RemoveJobConfig
from clear_ray.pipeline.layout import VideoStaging


def read_plan(staging: VideoStaging, storage_options: dict | None) -> dict[str, Any]:
    return json.loads(storage.read_bytes(staging.plan_uri, storage_options))


# x264 frame threads per segment. Fixed, never derived from the node: x264's bytes depend
# on its thread count, and outputs must not depend on where a segment ran. Two threads cost
# no more CPU per frame than one (56.1 vs 56.2 CPU-s for 1491 720p frames at preset medium)
# and let a segment use a core the scheduler leaves idle: the CPU an I/O-light remover
# actor holds but barely uses, or the whole node while a video's last segment is encoded.
ENCODER_THREADS = 2


def stitch_segment(config: RemoveJobConfig, input_uri: str, staging_root: str, segment_index: int,
                   decode_threads: int = 1) -> float:
    """Composite + encode segment ``segment_index`` into the staging directory; returns seconds."""
    from clear_ray.chunking import Chunk, Segment, blend_weights
    from clear_ray.media import SegmentEncoder, VideoInfo
    from clear_ray.staging import read_staged_chunk, staged_chunk_uri
    from clear_ray.stitch import stitch_segment as composite_and_encode

    started = time.perf_counter()
    options = config.storage.s3_storage_options()
    staging = VideoStaging(staging_root)
    plan = read_plan(staging, options)
    info = VideoInfo.model_validate(plan["info"])
    chunks = [Chunk.from_dict(c) for c in plan["chunks"]]
    segment = Segment.from_dict(plan["segments"][segment_index])
    weights = blend_weights(chunks, info.num_frames, config.chunking.blend)
    staged = {j: read_staged_chunk(staged_chunk_uri(staging.chunks_dir, j), storage_options=options)
              for j in segment.chunk_indices}
    with tempfile.TemporaryDirectory(prefix="cr-seg-") as scratch:
        local = os.path.join(scratch, f"segment-{segment_index:06d}.mp4")
        with SegmentEncoder(local, info, crf=config.output.crf, preset=config.output.preset,
                            threads=ENCODER_THREADS) as encoder:
            composite_and_encode(input_uri, info, segment, staged, weights, encoder,
                                 frame_pts=plan["frame_pts"], storage_options=options, decode_threads=decode_threads)
        _put_file(local, staging.segment_uri(segment_index), options)
    return time.perf_counter() - started


def mux_video(config: RemoveJobConfig, input_uri: str, staging_root: str, output_uri: str,
              comparison_uri: str | None) -> dict[str, Any]:
    """Concatenate the segments with the source's other streams into ``output_uri``."""
    from clear_ray.media import VideoInfo, mux, write_comparison

    started = time.perf_counter()
    options = config.storage.s3_storage_options()
    staging = VideoStaging(staging_root)
    plan = read_plan(staging, options)
    info = VideoInfo.model_validate(plan["info"])
    # Segments are read where they are staged (S3 ranges or the shared filesystem), one at
    # a time: the local disk holds at most the output being written, never a second copy
    # of the whole film.
    segment_uris = [staging.segment_uri(k) for k in range(len(plan["segments"]))]
    mux(segment_uris, input_uri, output_uri, info, storage_options=options)
    if comparison_uri:
        write_comparison(input_uri, output_uri, comparison_uri, storage_options=options)
    return {"seconds": time.perf_counter() - started, "frames": info.num_frames, "fps": info.fps,
            "width": info.width, "height": info.height, "duration_s": info.duration_s}


def _put_file(local: str, uri: str, storage_options: dict | None) -> None:
    """Move a finished local file to ``uri`` so that the name appears only when complete."""
    if storage.is_remote(uri):
        fs, path = storage.filesystem(uri, storage_options)
        storage.retry(fs.put_file, local, path, what=f"upload {uri}")  # a single PUT: atomic on object stores
        return
    os.makedirs(os.path.dirname(uri), exist_ok=True)
    temp = f"{uri}.part-{os.getpid()}"
    shutil.copyfile(local, temp)
    os.replace(temp, uri)
