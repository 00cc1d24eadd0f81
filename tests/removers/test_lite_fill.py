"""lite's filling on its own: given where the text is, bring the background in from the
frames where it shows (camera pan) or inpaint it (still shot)."""

from __future__ import annotations

import numpy as np

from clear_ray.footage import skimage_photo
from clear_ray.removers.lite_fill import FillSettings, fill_holes, push_pull, sample_bilinear


def _pan(step_px: float, frames: int = 13, h: int = 96, w: int = 128) -> np.ndarray:
    import cv2
    from PIL import Image

    photo = np.asarray(Image.open(skimage_photo("astronaut.png")).convert("RGB"))
    photo = cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA)
    out = []
    for t in range(frames):
        shift = np.array([[1, 0, -20 - step_px * t], [0, 1, -60 - step_px * t]], np.float64)
        out.append(cv2.warpAffine(photo, shift, (w, h), flags=cv2.INTER_LINEAR))
    return np.stack(out)


def _psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    err = (a.astype(np.float64) - b.astype(np.float64))[where]
    return 10 * np.log10(255.0 ** 2 / max(1e-10, float(np.mean(err ** 2))))


def _hole(frames: int, h: int = 96, w: int = 128) -> np.ndarray:
    hole = np.zeros((frames, h, w), bool)
    hole[:, 70:84, 30:100] = True  # a caption-sized band, the same in every frame
    return hole


def test_moving_background_is_recovered_from_other_frames():
    clean = _pan(step_px=3.0)
    hole = _hole(len(clean))
    damaged = clean.copy()
    damaged[hole] = 255
    filled = fill_holes(damaged, hole, FillSettings())
    assert np.array_equal(filled[~hole], damaged[~hole])  # nothing outside the hole changes
    # The band is 14 px tall: after a few diagonal 3-px steps every pixel shows somewhere;
    # middle frames see it from both sides. Spatial inpainting gets ~15 dB here.
    middle = np.zeros_like(hole)
    middle[3:-3] = hole[3:-3]
    assert _psnr(filled, clean, middle) > 30.0


def test_still_background_is_inpainted_the_same_way_in_every_frame():
    clean = np.repeat(_pan(step_px=0.0)[:1], 9, axis=0)
    hole = _hole(len(clean))
    damaged = clean.copy()
    damaged[hole] = 0
    filled = fill_holes(damaged, hole, FillSettings())
    assert _psnr(filled, clean, hole) > _psnr(damaged, clean, hole) + 6.0
    assert all(np.array_equal(filled[0], frame) for frame in filled[1:])  # no flicker


def test_push_pull_and_sampling_helpers():
    values = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    weight = np.ones((3, 4), np.float32)
    weight[1, 1:3] = 0
    filled = push_pull(values, weight)
    assert np.allclose(filled[weight > 0], values[weight > 0])
    assert 1.0 < filled[1, 1, 0] < 10.0 and 1.0 < filled[1, 2, 0] < 11.0
    frames = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    got = sample_bilinear(frames, np.array([1, 0]), np.array([1.0, 0.0]), np.array([2.0, 0.5]))
    assert np.allclose(got[0], frames[1, 1, 2], atol=0.5)
    assert np.allclose(got[1], (frames[0, 0, 0].astype(float) + frames[0, 0, 1]) / 2, atol=0.6)
