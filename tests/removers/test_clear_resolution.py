"""CLEAR's resolution rule (area <= 1280x720, multiples of 16, short side <= 720) and resizing."""

from __future__ import annotations

import numpy as np
import pytest

from clear_ray.models.resolution import model_resolution, resize_frames


@pytest.mark.parametrize("source, expected", [
    ((832, 480), (832, 480)),      # Wan's native size: untouched
    ((1920, 1080), (1280, 720)),   # area cap: scale sqrt(2.25) = 1.5
    ((1080, 1920), (720, 1280)),   # portrait keeps its orientation
    ((640, 360), (640, 352)),      # small: only floored to multiples of 16
    ((3840, 1600), (1472, 608)),   # 2.4:1 scope: 1487x619 floored
    ((1000, 900), (784, 720)),     # under the area cap, but the short side 896 > 720
    ((900, 1000), (720, 784)),     # the same, portrait
    ((64, 48), (64, 48)),
    ((70, 50), (64, 48)),
])
def test_model_resolution_follows_clears_rule(source, expected):
    width, height = model_resolution(*source)
    assert (width, height) == expected
    assert width % 16 == 0 and height % 16 == 0 and width * height <= 1280 * 720 and min(width, height) <= 720


def test_a_lower_area_cap_is_honoured():
    assert model_resolution(1920, 1080, max_area=832 * 480) == (832, 464)


def test_frames_too_small_are_rejected():
    with pytest.raises(ValueError, match="too small"):
        model_resolution(15, 64)


def test_resize_round_trip_keeps_shape_dtype_and_content():
    frames = np.zeros((3, 50, 70, 3), np.uint8)
    frames[:, 10:40, 20:50] = 200
    small = resize_frames(frames, 64, 48)
    assert small.shape == (3, 48, 64, 3) and small.dtype == np.uint8
    back = resize_frames(small.astype(np.float32), 70, 50)
    assert back.shape == (3, 50, 70, 3) and back.dtype == np.float32
    assert abs(back[:, 25, 35].mean() - 200) < 2 and abs(back[:, 2, 2].mean()) < 2
    assert resize_frames(frames, 70, 50) is frames


def test_cover_crop_maps_the_model_frame_back_where_the_model_saw_the_source():
    import cv2

    from clear_ray.models.resolution import CoverCrop, model_resolution

    y, x = np.mgrid[0:50, 0:70]
    frame = np.stack([x * 3, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)
    frames = np.stack([frame, cv2.GaussianBlur(frame, (5, 5), 1.0)])
    model_w, model_h = model_resolution(70, 50)  # 64x48: covering keeps 48 rows, crops columns
    crop = CoverCrop(70, 50, model_w, model_h)
    inside = crop.to_model(frames)
    assert inside.shape == (2, model_h, model_w, 3)
    back, seen = crop.to_source(inside)  # an identity "model"
    assert back.shape == frames.shape and seen.shape == (50, 70)
    assert seen[:, 10:60].all() and not seen[:, 0].any() and not seen[:, -1].any()  # the cut-off columns
    assert (back[:, ~seen] == 0).all()
    error = np.abs(back[:, seen].astype(float) - frames[:, seen]).mean()
    assert error < 2.0, error  # a smooth frame survives the round trip


def test_the_cover_crop_remover_keeps_the_cropped_border_as_source(tiny_clear_model):
    from clear_ray.config import RemoverConfig
    from clear_ray.removers import load_remover

    frames = np.random.default_rng(0).integers(0, 256, (5, 50, 70, 3), dtype=np.uint8)
    remover = load_remover(RemoverConfig(backend="clear", composite=False, clear={
        "model_dir": tiny_clear_model.model_dir, "lora": tiny_clear_model.lora_path, "steps": 1,
        "resize": "cover_crop"}), device="cpu")
    result = remover.remove(frames)
    assert result.frames_thwc_u8.shape == frames.shape
    border = result.mask_thw_f32[0] == 0
    assert border[:, 0].all() and border[:, -1].all() and not border[:, 10:60].any()
    assert np.array_equal(result.frames_thwc_u8[:, border], frames[:, border])
    assert not np.array_equal(result.frames_thwc_u8[:, ~border], frames[:, ~border])  # the model ran inside
