"""One training sample for the lite segmenter: network input + target mask of one frame.

A short background sequence gets a caption whose timing is random (whole window, appears,
vanishes, changes to another caption, fades), passes through JPEG compression (standing in
for the video codec), is downscaled as inference downscales, and becomes exactly the
input ``clear_ray.removers.lite_features`` computes for a real chunk. The target is
every working-resolution pixel the caption touches at the centre frame.
"""

from __future__ import annotations

import numpy as np

from clear_ray.removers.lite_features import STABILITY_OFFSETS, detector_input, stability_maps, to_gray_f32
from clear_ray.removers.lite_training.backgrounds import background_sequence
from clear_ray.removers.lite_training.text_layers import composite, coverage, render_text_layers

WINDOW = 2 * max(STABILITY_OFFSETS) + 1
CENTRE = max(STABILITY_OFFSETS)
# A working pixel counts as text when any caption layer covers it at least this much.
TARGET_ALPHA = 0.04


def _opacity_schedule(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame opacity of caption A and caption B (B used only by 'change')."""
    a, b = np.ones(n, np.float32), np.zeros(n, np.float32)
    mode = rng.random()
    cut = int(rng.integers(1, n))
    if mode < 0.5:
        pass  # on screen for the whole window
    elif mode < 0.62:
        a[:cut] = 0.0  # appears
    elif mode < 0.74:
        a[cut:] = 0.0  # vanishes
    elif mode < 0.88:
        a[cut:], b[cut:] = 0.0, 1.0  # changes to another caption
    else:
        ramp = int(rng.integers(3, 10))
        start = int(rng.integers(CENTRE - ramp, CENTRE + 1))
        fade = np.clip((np.arange(n) - start) / ramp, 0.0, 1.0).astype(np.float32)
        a = fade if rng.random() < 0.5 else fade[::-1].copy()
    return a, b


def make_sample(rng: np.random.Generator, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(input (5, size, size) float16, target (size, size) uint8 0/1)."""
    import cv2

    render_scale = 1 if rng.random() < 0.45 else int(rng.integers(2, 4))
    big = size * render_scale
    frames_u8 = background_sequence(rng, WINDOW, big, big)
    target_big = np.zeros((big, big), np.float32)
    if rng.random() < 0.85:
        text_height = rng.uniform(7, 40) * render_scale
        layers_a = render_text_layers(rng, big, big, text_height)
        layers_b = render_text_layers(rng, big, big, text_height) if rng.random() < 0.9 else layers_a
        op_a, op_b = _opacity_schedule(rng, WINDOW)
        cover_a, cover_b = coverage(layers_a), coverage(layers_b)
        target_big = np.maximum(cover_a * op_a[CENTRE], cover_b * op_b[CENTRE])
        # Composite only inside the captions' bounding box: the rest stays uint8 untouched.
        ys, xs = np.nonzero(np.maximum(cover_a, cover_b) > 0)
        if ys.size:
            box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
            crop = [[(a[box], c) for a, c in layers] for layers in (layers_a, layers_b)]
            for i in range(WINDOW):
                region = frames_u8[i][box].astype(np.float32)
                if op_a[i] > 0:
                    region = composite(region, crop[0], float(op_a[i]))
                if op_b[i] > 0:
                    region = composite(region, crop[1], float(op_b[i]))
                frames_u8[i][box] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.8:
        quality = int(rng.integers(45, 96))
        frames_u8 = np.stack([
            cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_UNCHANGED)
            for f in frames_u8
        ])
    if render_scale > 1:
        frames_u8 = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames_u8])
        target = (target_big > TARGET_ALPHA).reshape(size, render_scale, size, render_scale).max(axis=(1, 3))
    else:
        target = target_big > TARGET_ALPHA
    gray = np.stack([to_gray_f32(f) for f in frames_u8])
    # A chunk's first and last frames see only one time direction.
    edge = rng.random()
    low, high = stability_maps(gray, CENTRE, use_before=edge > 0.08, use_after=edge < 0.92 or edge <= 0.08)
    inputs = detector_input(frames_u8[CENTRE], low, high)
    return inputs.astype(np.float16), target.astype(np.uint8)
