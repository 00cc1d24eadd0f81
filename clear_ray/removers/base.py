"""The one interface every subtitle remover implements.

A remover sees one chunk of display-oriented RGB frames and returns replacement frames
plus a soft mask of where it replaced something (1 = replaced, 0 = untouched), over whole
frames or over the one region it changed. It never
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
    frames_thwc_u8: np.ndarray  # (T, H, W, 3) uint8, same shape as the input chunk (or the region)
    mask_thw_f32: np.ndarray  # (T, H, W) float32 in [0, 1]; 0 keeps the source pixel exactly
    # A result may cover one region of the frames and leave the rest untouched (mask 0
    # there): ``frame_hw`` is then the whole frame's size and ``origin_yx`` the region's
    # top-left corner. A remover that changes a caption band of a 720p chunk returns just
    # the band, instead of allocating and copying 81 whole frames that staging drops again.
    origin_yx: tuple[int, int] = (0, 0)
    frame_hw: tuple[int, int] | None = None  # None: the arrays are whole frames

    def __post_init__(self) -> None:
        frames, mask = self.frames_thwc_u8, self.mask_thw_f32
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (T,H,W,3), got {frames.dtype} {frames.shape}")
        if mask.dtype != np.float32 or mask.shape != frames.shape[:3]:
            raise ValueError(f"mask must be float32 {frames.shape[:3]}, got {mask.dtype} {mask.shape}")
        if self.frame_hw is not None:
            (y0, x0), (h, w) = self.origin_yx, self.frame_hw
            if min(y0, x0) < 0 or y0 + frames.shape[1] > h or x0 + frames.shape[2] > w:
                raise ValueError(f"a region of {frames.shape[1:3]} at {self.origin_yx} lies outside "
                                 f"frames of {self.frame_hw}")
        elif self.origin_yx != (0, 0):
            raise ValueError("origin_yx needs frame_hw (the whole frame's size)")

    @property
    def region(self) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) of the frames this result covers."""
        (y0, x0), (h, w) = self.origin_yx, self.frames_thwc_u8.shape[1:3]
        return y0, y0 + h, x0, x0 + w

    def whole(self, source_thwc_u8: np.ndarray) -> "RemovalResult":
        """This result over whole frames: ``source_thwc_u8`` (the remover's input) outside
        the region, where the mask is 0."""
        if self.frame_hw is None:
            return self
        if source_thwc_u8.shape != (self.frames_thwc_u8.shape[0], *self.frame_hw, 3):
            raise ValueError(f"source {source_thwc_u8.shape} does not match the result's frames "
                             f"({self.frames_thwc_u8.shape[0]}, {self.frame_hw})")
        y0, y1, x0, x1 = self.region
        frames = source_thwc_u8.copy()
        frames[:, y0:y1, x0:x1] = self.frames_thwc_u8
        mask = np.zeros(source_thwc_u8.shape[:3], np.float32)
        mask[:, y0:y1, x0:x1] = self.mask_thw_f32
        return RemovalResult(frames, mask)


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
