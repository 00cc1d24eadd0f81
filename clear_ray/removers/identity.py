"""Passthrough remover: replaces nothing. For I/O tests and pipeline-overhead benchmarks."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from clear_ray.removers.base import RemovalResult


class IdentityRemover:
    name: ClassVar[str] = "identity"
    wants_gpu: ClassVar[bool] = False

    @classmethod
    def fingerprint_for(cls, config=None) -> str:
        return "v1"

    def fingerprint(self) -> str:
        return self.fingerprint_for()

    def remove(self, frames_thwc_u8: np.ndarray) -> RemovalResult:
        mask_thw_f32 = np.zeros(frames_thwc_u8.shape[:3], dtype=np.float32)
        return RemovalResult(frames_thwc_u8=frames_thwc_u8, mask_thw_f32=mask_thw_f32)
