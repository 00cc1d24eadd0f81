"""Frame work on the remover's device: uint8 <-> model floats and resizing, in torch.

On a GPU actor, resizing a 1080p chunk with OpenCV and converting it frame by frame costs
CPU seconds per chunk while the GPU waits. Here the chunk is uploaded once as uint8 (a
quarter of float32's bytes) and everything after happens where the model runs:

- ``model_input``: uint8 (T, H, W, 3) -> (1, 3, T, H, W) in [-1, 1], the same operations
  in the same dtype as DiffSynth's ``preprocess_video`` (bit-equal; tested);
- ``resize_frames_u8`` / ``video_to_u8``: OpenCV's rules as ``resolution.resize_frames``
  applies them (area averaging when shrinking, bicubic a = -0.75 with replicated borders
  when enlarging), as two matrix products per frame batch. Equal to OpenCV within one
  level of 255: OpenCV's uint8 path uses 11-bit fixed-point weights, its float path sums
  in another order, so a value at a rounding boundary may round the other way (tested).

Where the area rule would have to enlarge one side (OpenCV then switches to a different
interpolation) the CPU function is used: CLEAR's model size never exceeds the source on
either side, so the job never gets there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

FRAME_BATCH = 8  # frames resized at once: bounds float32 temporaries at 1080p to ~200 MB
CUBIC_A = -0.75  # OpenCV's (and torch's) bicubic coefficient


def as_device_u8(frames_thwc_u8: "np.ndarray | torch.Tensor", device: Any) -> "torch.Tensor":
    """The chunk as a uint8 tensor on ``device`` (one upload)."""
    import torch

    return torch.as_tensor(np.ascontiguousarray(frames_thwc_u8) if isinstance(frames_thwc_u8, np.ndarray)
                           else frames_thwc_u8).to(device)


def model_input(pipe: Any, frames_thwc_u8: "np.ndarray | torch.Tensor") -> "torch.Tensor":
    """(1, 3, T, H, W) in [-1, 1] on the pipe's device and dtype: DiffSynth's
    ``preprocess_image`` arithmetic (cast to the dtype, then x * (2 / 255) + -1)."""
    frames = as_device_u8(frames_thwc_u8, pipe.device)
    video = frames.permute(3, 0, 1, 2).unsqueeze(0).to(dtype=pipe.torch_dtype)
    return video * ((1 - -1) / 255) + -1


def resize_weights(in_size: int, out_size: int, mode: str, device: Any = "cpu") -> "torch.Tensor":
    """(out_size, in_size) float32 matrix: output sample o = sum_i W[o, i] * input[i].

    ``area``: output pixel o covers input [o * s, (o + 1) * s) with s = in / out; each input
    pixel weighs its overlap / s (OpenCV INTER_AREA, shrinking). ``cubic``: centre-aligned
    sampling at (o + 0.5) * in / out - 0.5 with the a = -0.75 cubic, indices clamped to
    the edge (OpenCV INTER_CUBIC)."""
    import torch

    if in_size == out_size:
        return torch.eye(out_size, dtype=torch.float32, device=device)
    weights = np.zeros((out_size, in_size), np.float64)
    scale = in_size / out_size
    if mode == "area":
        if out_size > in_size:
            raise ValueError("area resizing only shrinks")
        for o in range(out_size):
            low, high = o * scale, (o + 1) * scale
            for i in range(int(np.floor(low)), min(in_size, int(np.ceil(high)))):
                weights[o, i] = (min(high, i + 1) - max(low, i)) / scale
    else:
        for o in range(out_size):
            source = (o + 0.5) * scale - 0.5
            base = int(np.floor(source))
            fraction = source - base
            for tap in range(-1, 3):
                weights[o, min(max(base + tap, 0), in_size - 1)] += _cubic(tap - fraction)
    return torch.as_tensor(weights, dtype=torch.float32, device=device)


def _cubic(x: float) -> float:
    x = abs(x)
    if x <= 1:
        return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1
    if x < 2:
        return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A
    return 0.0


def _mode(source_w: int, source_h: int, width: int, height: int) -> str | None:
    """``resolution.resize_frames``'s choice; None where OpenCV's area rule would enlarge a side."""
    if width * height < source_w * source_h:
        return "area" if width <= source_w and height <= source_h else None
    return "cubic"


def resize_tchw(frames_tchw_f32: "torch.Tensor", width: int, height: int, mode: str) -> "torch.Tensor":
    """float32 (T, C, H, W) -> (T, C, height, width), separably, by frame batches."""
    import torch

    source_h, source_w = frames_tchw_f32.shape[-2:]
    rows = resize_weights(source_h, height, mode, frames_tchw_f32.device)
    columns_t = resize_weights(source_w, width, mode, frames_tchw_f32.device).T.contiguous()
    out = torch.empty((*frames_tchw_f32.shape[:2], height, width), dtype=torch.float32, device=frames_tchw_f32.device)
    for start in range(0, frames_tchw_f32.shape[0], FRAME_BATCH):
        batch = frames_tchw_f32[start:start + FRAME_BATCH].float()
        out[start:start + FRAME_BATCH] = torch.matmul(torch.matmul(rows, batch), columns_t)
    return out


def resize_frames_u8(frames_thwc_u8: "torch.Tensor", width: int, height: int) -> "torch.Tensor":
    """uint8 (T, H, W, 3) on any device -> uint8 (T, height, width, 3) on the same device,
    as ``resolution.resize_frames`` resizes it (within one level; module docstring)."""
    import torch

    source_h, source_w = frames_thwc_u8.shape[1:3]
    if (source_w, source_h) == (width, height):
        return frames_thwc_u8
    mode = _mode(source_w, source_h, width, height)
    if mode is None:
        from clear_ray.models.resolution import resize_frames

        return torch.as_tensor(resize_frames(frames_thwc_u8.cpu().numpy(), width, height)).to(frames_thwc_u8.device)
    out = torch.empty((frames_thwc_u8.shape[0], height, width, 3), dtype=torch.uint8, device=frames_thwc_u8.device)
    for start in range(0, frames_thwc_u8.shape[0], FRAME_BATCH):
        batch_tchw = frames_thwc_u8[start:start + FRAME_BATCH].permute(0, 3, 1, 2).float()
        resized = resize_tchw(batch_tchw, width, height, mode)
        # Half up, as OpenCV's uint8 resizers round (its 2x area path: (sum + 2) >> 2).
        out[start:start + FRAME_BATCH] = resized.add_(0.5).floor_().clamp_(0, 255).permute(0, 2, 3, 1).to(torch.uint8)
    return out


def video_to_u8(video_bcthw: "torch.Tensor", width: int, height: int) -> "torch.Tensor":
    """(1, 3, T, h, w) in [-1, 1] -> uint8 (T, height, width, 3) on the video's device:
    DiffSynth's mapping to [0, 255] in float32, resized in float, then rounded half to
    even (``np.rint``; DiffSynth truncates, half a level darker)."""
    import torch

    frames_tchw = video_bcthw[0].permute(1, 0, 2, 3)
    source_h, source_w = frames_tchw.shape[-2:]
    mode = _mode(source_w, source_h, width, height) if (source_w, source_h) != (width, height) else "same"
    if mode is None:
        raise ValueError(f"cannot resize {source_w}x{source_h} to {width}x{height} on the device")
    out = torch.empty((frames_tchw.shape[0], height, width, 3), dtype=torch.uint8, device=video_bcthw.device)
    for start in range(0, frames_tchw.shape[0], FRAME_BATCH):
        batch = (frames_tchw[start:start + FRAME_BATCH].float() + 1.0) * 127.5
        if mode != "same":
            batch = resize_tchw(batch, width, height, mode)
        out[start:start + FRAME_BATCH] = batch.round_().clamp_(0, 255).permute(0, 2, 3, 1).to(torch.uint8)
    return out
