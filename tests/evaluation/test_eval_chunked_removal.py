"""The in-memory chunked run the benchmarks use to recover a remover's mask: every frame's
cross-faded mask is what the remover drew there, and the composite is the pipeline's."""

from __future__ import annotations

import numpy as np

from clear_ray.evaluation.chunked_removal import run_chunked
from clear_ray.removers.base import RemovalResult


class _PaintsLeftHalfOfOddChunkFrames:
    """Blacks out the left half, masked 1, on frames whose source value is odd; remembers
    the window lengths it was given."""

    def __init__(self):
        self.windows: list[int] = []

    def remove(self, frames_thwc_u8: np.ndarray) -> RemovalResult:
        self.windows.append(len(frames_thwc_u8))
        mask = np.zeros(frames_thwc_u8.shape[:3], np.float32)
        odd = frames_thwc_u8[:, 0, -1, 0] % 2 == 1
        mask[odd, :, : frames_thwc_u8.shape[2] // 2] = 1.0
        out = frames_thwc_u8.copy()
        out[mask > 0] = 0
        return RemovalResult(frames_thwc_u8=out, mask_thw_f32=mask)


def test_masks_and_composite_follow_the_remover_across_overlaps():
    frames = np.zeros((100, 12, 16, 3), np.uint8)
    frames[:] = (np.arange(100, dtype=np.uint8) + 40)[:, None, None, None]  # each frame's own value
    remover = _PaintsLeftHalfOfOddChunkFrames()
    output, mask, seconds = run_chunked(remover, frames, chunk_size=21, overlap=4)

    assert remover.windows and set(remover.windows) == {21} and seconds >= 0
    odd = (np.arange(100) + 40) % 2 == 1
    # Overlapping chunks agree on every frame, and the cross-fade weights sum to 1.
    np.testing.assert_allclose(mask[odd, :, :8], 1.0, atol=1e-6)
    assert not mask[~odd].any() and not mask[:, :, 8:].any()
    assert not output[odd, :, :8].any()
    np.testing.assert_array_equal(output[~odd], frames[~odd])
    np.testing.assert_array_equal(output[:, :, 8:], frames[:, :, 8:])
