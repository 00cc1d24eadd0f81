"""A remover run over a whole clip in memory, chunk by chunk as the pipeline runs it.

The same chunk plan (``chunking.chunk_size``/``overlap``, reflection padding at the ends),
the same cross-fade weights and the shared compositor formula (output = source where the
mask is 0, the remover's pixels where it is 1). The benchmarks use it where they need
what the pipeline does not keep: the remover's own mask, and its time alone.
"""

from __future__ import annotations

import time

import numpy as np


def run_chunked(remover, frames_thwc_u8: np.ndarray, chunk_size: int, overlap: int,
                blend: str = "cosine") -> tuple[np.ndarray, np.ndarray, float]:
    """(composited output (T,H,W,3) uint8, blended mask (T,H,W) float32 in [0, 1],
    seconds spent inside ``remover.remove``)."""
    from clear_ray.chunking import blend_weights, chunk_source_indices, plan_chunks, real_frame_slice

    frames = frames_thwc_u8.shape[0]
    chunks = plan_chunks(frames, chunk_size, overlap)
    mix_thw = np.zeros(frames_thwc_u8.shape[:3], np.float32)
    removed_sum = np.zeros(frames_thwc_u8.shape, np.float32)
    seconds = 0.0
    for chunk, weight in zip(chunks, blend_weights(chunks, frames, blend)):
        window = frames_thwc_u8[chunk_source_indices(chunk)]
        started = time.perf_counter()
        result = remover.remove(window)
        seconds += time.perf_counter() - started
        result = result.whole(window)
        real = real_frame_slice(chunk)
        weighted_mask = result.mask_thw_f32[real] * weight[:, None, None].astype(np.float32)
        mix_thw[chunk.start:chunk.stop] += weighted_mask
        removed_sum[chunk.start:chunk.stop] += weighted_mask[..., None] * result.frames_thwc_u8[real]
    out = frames_thwc_u8.astype(np.float32) * (1.0 - mix_thw[..., None]) + removed_sum
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), mix_thw, seconds
