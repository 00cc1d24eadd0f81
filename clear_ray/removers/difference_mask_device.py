"""``difference_mask`` in torch, on the tensors' device (the remover's GPU), so a GPU actor
does not stop for OpenCV on the CPU after every chunk. The steps and settings are those of
``difference_mask.py`` (read its docstring); this file only says how each is made equal:

- change: the same integers; the box average is an exact integer box sum (float32 holds
  sums up to 255·63² exactly) divided by the box area in float64 and rounded to float32,
  which is what OpenCV's float ``blur`` (double accumulators) yields, compared with the
  threshold in float32 as numpy compares. Border: reflect with the edge repeated
  (OpenCV BORDER_REFLECT);
- dilation: OpenCV's elliptic structuring element, applied as a 0/1 convolution (> 0);
  exact;
- feather: the same box sum of the grown 0/1 region (BORDER_REPLICATE) over the box area;
  exactly 0 where the sum is 0, the ramp within float32 rounding of OpenCV's;
- temporal closing and fade: the same integer runs and float32 maxima; exact.

So the mask is exactly 0 where the CPU mask is 0 and 1 where it is 1, and the ramp agrees
to ~1e-6 (tested on CPU against ``difference_mask``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from clear_ray.config import DifferenceMaskConfig

FRAME_BATCH = 16  # frames filtered at once (bounds float32 temporaries at 1080p)


def difference_mask_device(source_thwc_u8: "torch.Tensor", output_thwc_u8: "torch.Tensor",
                           settings: "DifferenceMaskConfig",
                           reconstruction_thwc_u8: "torch.Tensor | None" = None) -> "torch.Tensor":
    """(T, H, W) float32 mask in [0, 1] on the inputs' device; see ``difference_mask``."""
    import torch

    if source_thwc_u8.shape != output_thwc_u8.shape or source_thwc_u8.ndim != 4:
        raise ValueError(f"source {tuple(source_thwc_u8.shape)} and output {tuple(output_thwc_u8.shape)} "
                         "must both be (T,H,W,C)")
    if reconstruction_thwc_u8 is not None and reconstruction_thwc_u8.shape != source_thwc_u8.shape:
        raise ValueError(f"reconstruction {tuple(reconstruction_thwc_u8.shape)} must match source "
                         f"{tuple(source_thwc_u8.shape)}")
    if reconstruction_thwc_u8 is None:
        reference, threshold = source_thwc_u8, settings.threshold
    else:
        reference, threshold = reconstruction_thwc_u8, settings.reconstruction_threshold
    frames = source_thwc_u8.shape[0]
    changed_thw = torch.empty(source_thwc_u8.shape[:3], dtype=torch.bool, device=source_thwc_u8.device)
    for start in range(0, frames, FRAME_BATCH):
        stop = start + FRAME_BATCH
        changed_thw[start:stop] = changed_pixels(reference[start:stop], output_thwc_u8[start:stop], threshold,
                                                 settings.smoothing_px)
    changed_thw = close_gaps(changed_thw, settings.temporal_gap)
    soft_thw = torch.empty(changed_thw.shape, dtype=torch.float32, device=changed_thw.device)
    for start in range(0, frames, FRAME_BATCH):
        soft_thw[start:start + FRAME_BATCH] = feather(changed_thw[start:start + FRAME_BATCH], settings.dilate_px,
                                                      settings.feather_px)
    return temporal_fade(soft_thw, settings.temporal_radius)


def changed_pixels(reference_thwc_u8: "torch.Tensor", output_thwc_u8: "torch.Tensor", threshold: float,
                   smoothing_px: int) -> "torch.Tensor":
    """(T, H, W) bool: the box-averaged largest channel change exceeds ``threshold``."""
    import torch

    change_thw = (output_thwc_u8.to(torch.int16) - reference_thwc_u8.to(torch.int16)).abs().amax(dim=3)
    if smoothing_px > 1:
        sums = _box_sum(change_thw.float(), smoothing_px, border="reflect")
        mean_thw = (sums.double() / (smoothing_px * smoothing_px)).float()
    else:
        mean_thw = change_thw.float()
    return mean_thw > torch.tensor(threshold, dtype=torch.float32)


def close_gaps(changed_thw: "torch.Tensor", max_gap: int) -> "torch.Tensor":
    """``difference_mask.close_gaps`` on tensors: off-runs of <= ``max_gap`` frames with an
    on-frame on each side are switched on."""
    import torch

    frames = changed_thw.shape[0]
    if max_gap == 0 or frames < 3:
        return changed_thw
    off_thw = ~changed_thw
    run_back = torch.zeros(changed_thw.shape, dtype=torch.int32, device=changed_thw.device)
    run_fwd = torch.zeros_like(run_back)
    run_back[0] = off_thw[0]
    for t in range(1, frames):
        run_back[t] = torch.where(off_thw[t], run_back[t - 1] + 1, 0)
    run_fwd[-1] = off_thw[-1]
    for t in range(frames - 2, -1, -1):
        run_fwd[t] = torch.where(off_thw[t], run_fwd[t + 1] + 1, 0)
    t_index = torch.arange(frames, device=changed_thw.device).view(-1, 1, 1)
    bounded = (run_back <= t_index) & (t_index + run_fwd <= frames - 1)
    short = run_back + run_fwd - 1 <= max_gap
    return changed_thw | (off_thw & bounded & short)


def feather(changed_thw: "torch.Tensor", dilate_px: int, feather_px: int) -> "torch.Tensor":
    """(T, H, W) float32: ``difference_mask.feather`` of every frame."""
    core_thw = _dilate(changed_thw.float(), dilate_px)
    if feather_px == 0:
        return core_thw
    radius = (feather_px + 1) // 2
    size = 2 * radius + 1
    grown_thw = _dilate(core_thw, radius)
    soft_thw = (_box_sum(grown_thw, size, border="replicate").double() / (size * size)).float()
    soft_thw[core_thw > 0] = 1.0
    soft_thw[soft_thw < 0.5 / (size * size)] = 0.0
    return soft_thw.clamp_(0.0, 1.0)


def temporal_fade(soft_thw: "torch.Tensor", radius: int) -> "torch.Tensor":
    """``difference_mask.temporal_fade``: the max over neighbours within ``radius`` frames,
    weighted 1 - distance / (radius + 1)."""
    import numpy as np
    import torch

    if radius == 0:
        return soft_thw
    faded_thw = soft_thw.clone()
    frames = soft_thw.shape[0]
    for distance in range(1, radius + 1):
        if distance >= frames:
            break
        weight = float(np.float32(1.0 - distance / (radius + 1)))
        faded_thw[distance:] = torch.maximum(faded_thw[distance:], weight * soft_thw[:-distance])
        faded_thw[:-distance] = torch.maximum(faded_thw[:-distance], weight * soft_thw[distance:])
    return faded_thw


def _box_sum(values_thw: "torch.Tensor", size: int, *, border: str) -> "torch.Tensor":
    """Sum over a size x size box around every pixel (float32; exact for integer values)."""
    import torch.nn.functional as F

    half = size // 2
    height, width = values_thw.shape[1:]
    rows = _border_index(height, half, border, values_thw.device)
    columns = _border_index(width, half, border, values_thw.device)
    padded = values_thw[:, rows][:, :, columns]
    return F.avg_pool2d(padded[:, None], size, stride=1, divisor_override=1)[:, 0]


def _border_index(length: int, half: int, border: str, device) -> "torch.Tensor":
    """Source index of every padded position: ``reflect`` repeats the edge (fedcba|abcdef,
    OpenCV BORDER_REFLECT), ``replicate`` clamps (aaaaaa|abcdef)."""
    import torch

    index = torch.arange(-half, length + half, device=device)
    if border == "replicate":
        return index.clamp(0, length - 1)
    period = 2 * length
    index = index % period
    return torch.where(index < length, index, period - 1 - index)


def _dilate(mask_thw: "torch.Tensor", radius: int) -> "torch.Tensor":
    """0/1 float (T, H, W) grown by OpenCV's elliptic structuring element of ``radius``."""
    import cv2
    import torch
    import torch.nn.functional as F

    if radius == 0 or not bool(mask_thw.any()):
        return mask_thw
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    weight = torch.as_tensor(kernel, dtype=torch.float32, device=mask_thw.device)[None, None]
    grown = F.conv2d(mask_thw[:, None], weight, padding=radius)[:, 0]
    return (grown > 0.5).float()
