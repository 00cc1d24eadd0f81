"""The one interface every subtitle remover implements.

A remover sees one chunk of display-oriented RGB frames and returns replacement frames
plus a soft mask of where it replaced something (1 = replaced, 0 = untouched). It never
composites itself: the shared compositor in the stitch step blends
``source * (1 - mask) + frames * mask``, so every pixel outside the mask comes out as the
decoded source pixel exactly, whatever the backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np


class RemoverSetupError(ValueError):
    """A remover cannot be built from its settings (a missing or wrong model file, ...).
    Raised on the driver before any work starts; the CLI prints it as one line."""


@dataclass(frozen=True)
class RemovalResult:
    frames_thwc_u8: np.ndarray  # (T, H, W, 3) uint8, same shape as the input chunk
    mask_thw_f32: np.ndarray  # (T, H, W) float32 in [0, 1]; 0 keeps the source pixel exactly

    def __post_init__(self) -> None:
        frames, mask = self.frames_thwc_u8, self.mask_thw_f32
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (T,H,W,3), got {frames.dtype} {frames.shape}")
        if mask.dtype != np.float32 or mask.shape != frames.shape[:3]:
            raise ValueError(f"mask must be float32 {frames.shape[:3]}, got {mask.dtype} {mask.shape}")


@runtime_checkable
class Remover(Protocol):
    name: ClassVar[str]
    # True when the backend wants a GPU; the pipeline then asks Ray for one per actor
    # if the cluster has any, and falls back to CPU actors when it has none.
    wants_gpu: ClassVar[bool]
    # Optional (default False): the actor takes two chunks at once and decodes / stages one
    # while the other is in ``remove`` (never two in ``remove``); worth it when ``remove``
    # runs on an accelerator, so the CPU work of the next chunk hides behind it.
    # overlap_decode: ClassVar[bool]

    @classmethod
    def fingerprint_for(cls, config) -> str:
        """Identifies everything that changes this remover's output (weights, LoRA, scale,
        steps, thresholds) from the RemoverConfig alone, WITHOUT loading weights: the driver
        computes it for the resume key. A new fingerprint re-processes inputs."""
        ...

    def fingerprint(self) -> str:
        """``fingerprint_for`` of the config this instance was built with, extended by
        whatever the instance resolved at run time that changes its output (CLEAR: device,
        dtype, attention kernel); equal to it when nothing is resolved at run time. Each
        staged chunk records it, and a chunk staged under another value is recomputed
        rather than mixed into a video."""
        ...

    def remove(self, frames_thwc_u8: np.ndarray) -> RemovalResult:
        """Remove burned-in text from one chunk of frames (T = 4n+1 for model backends)."""
        ...
