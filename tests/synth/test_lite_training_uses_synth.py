"""The lite segmenter's training draws fonts and footage from the synth's train split only."""

from __future__ import annotations

import os

import numpy as np
import pytest

from clear_ray.removers.lite_training import backgrounds, text_layers
from clear_ray.removers.lite_training.samples import make_sample
from clear_ray.synth import fonts, footage


@pytest.mark.slow  # reads the character map of every installed Noto/DejaVu face
def test_training_fonts_hold_out_every_benchmark_face():
    benchmark = fonts.split_faces("dev") | fonts.split_faces("test")
    used = set()
    for font in text_layers.training_fonts():
        name = os.path.basename(font.path)
        family = fonts._families(font.path)[font.index]
        used.add((name, family if name.endswith(".ttc") else None))
    assert len(used) >= 20
    assert not used & benchmark
    assert {("NotoSansCJK-Regular.ttc", "Noto Sans CJK TC")} <= used  # a train-split CJK face


def test_backgrounds_come_from_train_footage_only():
    clips = backgrounds.clip_frames()
    expected = [high - low for low, high in (footage.VIDEO_RANGES[n]["train"] for n in sorted(footage.VIDEO_RANGES))]
    assert [len(c) for c in clips] == expected
    assert len(backgrounds.photos()) == len(footage.PHOTOS_BY_SPLIT["train"])
    x, y = make_sample(np.random.default_rng(0), size=64)
    assert x.shape[1:] == (64, 64) and y.shape == (64, 64)
