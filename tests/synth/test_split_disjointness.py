"""train / dev / test never share a font face, a text line, a style combination or footage."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from clear_ray.synth import fonts, footage, styles, texts

SPLITS = ("train", "dev", "test")
PAIRS = list(itertools.combinations(SPLITS, 2))


@pytest.mark.parametrize("language", sorted(fonts.FACES_BY_LANGUAGE))
def test_font_faces_are_disjoint(language):
    faces = {split: fonts.faces_for(language, split) for split in SPLITS}
    for split, found in faces.items():
        assert found, (language, split)
    keys = {split: {(f.file_name, f.index) for f in found} for split, found in faces.items()}
    for a, b in PAIRS:
        assert not keys[a] & keys[b], (language, a, b)
    # The benchmark's test families are seen by no other split (CJK dev/train share Sans, see fonts.py).
    test_families = {f.family for f in faces["test"]}
    assert not test_families & {f.family for f in faces["train"] + faces["dev"]}


@pytest.mark.parametrize("language", sorted(texts.LANGUAGES))
def test_text_lines_are_disjoint_and_every_split_has_plenty(language):
    pools = {split: texts.text_pool(language, split) for split in SPLITS}
    for split, pool in pools.items():
        assert len(pool) >= 100, (language, split, len(pool))
    for a, b in PAIRS:
        assert not set(pools[a]) & set(pools[b]), (language, a, b)
    assert sum(len(p) for p in pools.values()) == len(texts._all_lines(language))


def test_style_combinations_are_disjoint_and_each_split_covers_every_option():
    keys = {split: set(styles.style_keys(split)) for split in SPLITS}
    for a, b in PAIRS:
        assert not keys[a] & keys[b]
    for split, found in keys.items():
        parts = [set(key.split("/")[i] for key in found) for i in range(3)]
        assert parts == [set(styles.FILLS), set(styles.DECORATIONS), set(styles.SIZE_CLASSES)], split
    # Sampled styles stay inside their split.
    rng = np.random.default_rng(0)
    for split in SPLITS:
        for _ in range(10):
            assert styles.sample_style(rng, "en", split).key in keys[split]


def test_footage_is_disjoint():
    photos = {split: set(footage.PHOTOS_BY_SPLIT[split]) for split in SPLITS}
    for a, b in PAIRS:
        assert not photos[a] & photos[b]
    rng = np.random.default_rng(0)
    for name, ranges in footage.VIDEO_RANGES.items():
        frames = footage.video_source_info(name)[2]
        spans = sorted(ranges[split] for split in SPLITS)
        assert spans[0][0] == 0 and spans[-1][1] == frames
        assert all(left[1] <= right[0] for left, right in zip(spans, spans[1:])), name
        for split in SPLITS:
            low, high = ranges[split]
            for _ in range(5):  # every planned clip stays inside its split's frames
                spec = footage.plan_video(rng, name, 64, 48, float(rng.uniform(0.5, 12)), split)
                assert low <= spec.start_frame and spec.start_frame + spec.frames <= high, (name, split, spec)
