"""lite_box: the rectangle of a semi-transparent caption box, from its straight sides only,
on a real photo (a cat: fur texture everywhere); nothing on the same photo without a box or with a lone picture edge."""

from __future__ import annotations

import numpy as np
import pytest

from clear_ray.footage import skimage_photo
from clear_ray.removers.lite_box import find_boxes

H, W = 120, 200


@pytest.fixture(scope="module")
def photo_gray() -> np.ndarray:
    import cv2
    from PIL import Image

    photo = np.asarray(Image.open(skimage_photo("chelsea.png")).convert("L"))
    return cv2.resize(photo, (W, H), interpolation=cv2.INTER_AREA).astype(np.float32)


def _boxed(gray: np.ndarray, rects: list[tuple[int, int, int, int]], opacity: float, colour: float) -> np.ndarray:
    out = gray.copy()
    inside = np.zeros(gray.shape, bool)
    for y0, y1, x0, x1 in rects:
        inside[y0:y1, x0:x1] = True
    out[inside] = (1 - opacity) * out[inside] + opacity * colour
    return out


def _region(rows: tuple[int, int], cols: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A blobby text region inside the box (what the segmenter keeps): not a rectangle."""
    region = np.zeros((H, W), bool)
    y0, y1 = rows
    x0, x1 = cols
    region[y0:y1, x0:x1] = True
    region[y0, x0:x0 + 5] = region[y1 - 1, x1 - 5:x1] = False  # ragged corners
    region[y0:y0 + 2, x1 - 7:x1] = False
    return region, (x0, y0, x1 - x0, y1 - y0)


@pytest.mark.parametrize("opacity,colour", [(0.5, 0.0), (0.8, 10.0), (0.6, 250.0)])
def test_a_semi_transparent_box_is_found_whole(photo_gray, opacity, colour):
    rect = (80, 104, 40, 160)
    boxed = _boxed(photo_gray, [rect], opacity, colour)
    region, (x, y, bw, bh) = _region((84, 100), (46, 154))
    found = find_boxes(boxed, region, x, y, bw, bh)
    assert len(found) == 1
    y0, y1, x0, x1 = found[0]
    # Encloses the true rectangle, by at most the step's span more.
    assert y0 <= rect[0] and y1 >= rect[1] and x0 <= rect[2] and x1 >= rect[3]
    assert rect[0] - y0 <= 2 and y1 - rect[1] <= 2 and rect[2] - x0 <= 2 and x1 - rect[3] <= 2


def test_two_stacked_line_boxes_are_found(photo_gray):
    rects = [(60, 80, 30, 170), (80, 100, 60, 140)]  # wider first line, touching boxes
    boxed = _boxed(photo_gray, rects, 0.7, 0.0)
    region = np.zeros((H, W), bool)
    region[63:78, 36:164] = True
    region[82:97, 66:134] = True
    region[78:82, 70:130] = True  # the two lines' regions touch
    found = find_boxes(boxed, region, 36, 63, 128, 34)
    assert len(found) == 2
    covered = np.zeros((H, W), bool)
    for y0, y1, x0, x1 in found:
        covered[y0:y1, x0:x1] = True
    truth = np.zeros((H, W), bool)
    for y0, y1, x0, x1 in rects:
        truth[y0:y1, x0:x1] = True
    assert covered[truth].mean() > 0.97
    assert (covered & ~truth).sum() < 0.15 * truth.sum()


def test_no_box_no_rectangle(photo_gray):
    region, (x, y, bw, bh) = _region((84, 100), (46, 154))
    assert find_boxes(photo_gray, region, x, y, bw, bh) == []
    # A lone straight picture edge (a horizon) below the region is not a box either.
    horizon = photo_gray.copy()
    horizon[103:] = np.clip(horizon[103:] * 0.4, 0, 255)
    assert find_boxes(horizon, region, x, y, bw, bh) == []
