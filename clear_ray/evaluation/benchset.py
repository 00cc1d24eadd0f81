"""`clear-ray bench make DIR`: a reproducible benchmark set with exact ground truth.

Layout under DIR::

    manifest.json                    every clip: split, language, style, cues, footage, paths
    <split>/subtitled/<clip>.mp4     the input a remover sees
    <split>/clean/<clip>.mp4         the same footage, encoded with the same settings
    <split>/alpha/<clip>.npz         per-frame text alpha (uint8) + binary mask (bit-packed)

Each split repeats a fixed list of slots (footage kind, height, text or not), so every
split has text-free clips, several resolutions and both footage kinds; languages rotate
over the texted slots. Everything random comes from one seed per clip, derived from the
set seed, the split and the clip index, so the same seed gives byte-identical files and
``dev`` and ``test`` never share a seed, font, text line or style combination.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from clear_ray.config import X264Preset
from clear_ray.synth.video_io import EncoderSettings
from clear_ray.synth.burnin import MASK_THRESHOLD, cue_to_json, plan_cues, write_burnin
from clear_ray.synth.fonts import faces_for
from clear_ray.synth.footage import PHOTOS_BY_SPLIT, plan_photo, plan_video, render_footage
from clear_ray.synth.render import LayoutError
from clear_ray.synth.styles import sample_style, style_keys
from clear_ray.synth.texts import LANGUAGES

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "clear-ray-bench/1"
SPLIT_INDEX = {"dev": 0, "test": 1}  # seeds and language rotation (the synth has its own)
# (footage kind, video source or None for a photo, frame height, has text)
SLOTS: tuple[tuple[str, str | None, int, bool], ...] = (
    ("video", "bigbuckbunny.mp4", 720, True),
    ("photo", None, 480, True),
    ("video", "bikes.mp4", 240, False),
    ("video", "bikes.mp4", 240, True),
    ("photo", None, 720, True),
    ("video", "bigbuckbunny.mp4", 360, True),
    ("photo", None, 360, False),
    ("video", "bikes.mp4", 360, True),
    ("photo", None, 240, True),
    ("video", "bigbuckbunny.mp4", 480, True),
    ("video", "bigbuckbunny.mp4", 480, False),
    ("photo", None, 480, True),
)
LANGUAGE_ORDER = ("zh", "ar", "ja", "ru", "ko", "en", "fr", "de")


class BenchSetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    splits: tuple[Literal["dev", "test"], ...] = ("dev", "test")
    seed: int = Field(0, ge=0)
    clips_per_split: int = Field(12, ge=1, le=500)
    size: tuple[int, int] | None = Field(None, description="fixed (width, height) for every clip; "
                                                          "None = the slots' 240p-720p")
    min_seconds: float = Field(2.0, gt=0.0, le=60.0)
    max_seconds: float = Field(10.0, gt=0.0, le=60.0)
    crf: int = Field(EncoderSettings.crf, ge=0, le=51)
    preset: X264Preset = EncoderSettings.preset

    @model_validator(mode="after")
    def _check(self) -> "BenchSetConfig":
        if self.min_seconds > self.max_seconds:
            raise ValueError(f"min_seconds ({self.min_seconds}) > max_seconds ({self.max_seconds})")
        if self.size is not None and (self.size[0] % 2 or self.size[1] % 2 or min(self.size) < 32):
            raise ValueError(f"size must be even and at least 32x32, got {self.size[0]}x{self.size[1]}")
        if len(set(self.splits)) != len(self.splits) or not self.splits:
            raise ValueError(f"splits must be distinct and non-empty, got {self.splits}")
        return self

    def encoder(self) -> EncoderSettings:
        return EncoderSettings(crf=self.crf, preset=self.preset)


def clip_seed(seed: int, split: str, index: int) -> int:
    """The seed of one clip: independent streams per (set seed, split, index)."""
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=(SPLIT_INDEX[split], index))
    return int(sequence.generate_state(1, np.uint64)[0])


def make_benchmark_set(out_dir: str | Path, config: BenchSetConfig = BenchSetConfig(),
                       log=print) -> dict[str, Any]:
    """Build the set under ``out_dir`` and return the manifest (also written there, last)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clips: list[dict[str, Any]] = []
    for split in config.splits:
        for index in range(config.clips_per_split):
            started = time.perf_counter()
            clip = _make_clip(out_dir, config, split, index)
            clips.append(clip)
            log(f"  {clip['id']}: {clip['width']}x{clip['height']} {clip['frames']} frames, "
                f"{len(clip['cues'])} cues ({time.perf_counter() - started:.1f} s)")
    seeds = [clip["seed"] for clip in clips]
    if len(set(seeds)) != len(seeds):  # 64-bit seeds: a collision would be a bug
        raise RuntimeError("clip seeds collide")
    manifest = {
        "format": MANIFEST_FORMAT,
        "seed": config.seed,
        "config": config.model_dump(mode="json"),
        "encoder": config.encoder().__dict__,
        "mask_threshold": MASK_THRESHOLD,
        "splits": {split: [c["id"] for c in clips if c["split"] == split] for split in config.splits},
        "clips": clips,
    }
    write_json_atomic(out_dir / MANIFEST_NAME, manifest)
    return manifest


def load_manifest(bench_dir: str | Path) -> dict[str, Any]:
    path = Path(bench_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: make the set first (clear-ray bench make {bench_dir})")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: not a {MANIFEST_FORMAT} manifest (format {manifest.get('format')!r})")
    return manifest


def write_json_atomic(path: Path, data: Any) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def clip_slot(split: str, index: int) -> tuple[str, str | None, int, str | None]:
    """(footage kind, video source, slot height, language or None) of clip ``index``.
    Languages rotate over the texted slots, starting elsewhere in each split."""
    kind, video_name, slot_height, has_text = SLOTS[index % len(SLOTS)]
    language = None
    if has_text:
        language = LANGUAGE_ORDER[(_texted_before(index) + 3 * SPLIT_INDEX[split]) % len(LANGUAGE_ORDER)]
    return kind, video_name, slot_height, language


def clip_style_choice(split: str, index: int, seed: int) -> tuple[str, str]:
    """(style key, position) dealt to texted clip ``index``: the split's style combinations
    in turn (from a seed-dependent start) and every fourth text at the top, so even a
    12-clip split shows every decoration and both positions instead of whatever a few
    random draws give."""
    keys = style_keys(split)
    texted = _texted_before(index)
    return keys[(texted + seed) % len(keys)], ("top" if texted % 4 == 3 else "bottom")


def _texted_before(index: int) -> int:
    return sum(SLOTS[i % len(SLOTS)][3] for i in range(index))


def _make_clip(out_dir: Path, config: BenchSetConfig, split: str, index: int) -> dict[str, Any]:
    seed = clip_seed(config.seed, split, index)
    rng = np.random.default_rng(seed)
    kind, video_name, slot_height, language = clip_slot(split, index)
    width, height = config.size or _frame_size(rng, slot_height)
    seconds = float(rng.uniform(config.min_seconds, config.max_seconds))
    if kind == "video":
        spec = plan_video(rng, video_name, width, height, seconds, split)
    else:
        photos = PHOTOS_BY_SPLIT[split]
        spec = plan_photo(rng, photos[index % len(photos)], width, height, seconds)
    frames_thwc_u8, fps = render_footage(spec)

    style = face = None
    cues = []
    if language is not None:
        faces = faces_for(language, split)
        for _ in range(20):  # a style too big for a tiny frame: draw another
            face = faces[int(rng.integers(len(faces)))]
            key, position = clip_style_choice(split, index, config.seed)
            style = sample_style(rng, language, split, face, key=key, position=position)
            try:
                cues = plan_cues(rng, spec.frames / float(fps), language, split, style, face, width, height)
                break
            except LayoutError:
                continue
        else:
            raise LayoutError(f"no style fits {language} text into {width}x{height}")

    clip_id = f"{split}-{index:02d}-{language or 'none'}-{spec.source.split('.')[0]}"
    rel = {name: f"{split}/{name}/{clip_id}.{'npz' if name == 'alpha' else 'mp4'}"
           for name in ("subtitled", "clean", "alpha")}
    files = write_burnin(frames_thwc_u8, fps, cues, style, face, language,
                         out_dir / rel["subtitled"], out_dir / rel["clean"], out_dir / rel["alpha"],
                         config.encoder())
    return {
        "id": clip_id, "split": split, "index": index, "seed": seed,
        "language": language, "language_name": LANGUAGES[language].name if language else None,
        "text_source": LANGUAGES[language].source if language else None,
        "width": width, "height": height, "fps": str(fps), "frames": files.frames,
        "duration_s": round(files.frames / float(fps), 4), "text_frames": files.text_frames,
        "motion": "camera and scene" if spec.kind == "video" else "pan and zoom",
        "footage": spec.to_json(),
        "style": style.to_json() if style else None,
        "font": {"file": face.file_name, "family": face.family, "index": face.index} if face else None,
        "cues": [cue_to_json(cue) for cue in cues],
        "paths": rel,
    }


def _frame_size(rng: np.random.Generator, height: int) -> tuple[int, int]:
    aspect = 4 / 3 if rng.random() < 0.25 else 16 / 9
    width = int(round(height * aspect / 2)) * 2
    return width, height

