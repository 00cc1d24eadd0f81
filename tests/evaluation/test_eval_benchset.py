"""`clear-ray bench make` end to end through the CLI, on a tiny configuration."""

from __future__ import annotations

import json
from pathlib import Path

from clear_ray.evaluation.benchset import SLOTS, BenchSetConfig, clip_seed, clip_slot, clip_style_choice, load_manifest
from clear_ray.synth.styles import style_keys
from clear_ray.synth.burnin import load_alpha
from clear_ray.synth.texts import split_of_text


def files_of(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_manifest_describes_every_clip_and_its_files(tiny_bench):
    manifest = load_manifest(tiny_bench)
    assert set(manifest["splits"]) == {"dev", "test"}
    clips = manifest["clips"]
    assert len(clips) == 6
    assert any(c["language"] is None for c in clips) and any(c["language"] for c in clips)
    for clip in clips:
        assert (clip["width"], clip["height"]) == (160, 120)
        assert 1.0 <= clip["duration_s"] <= 2.04
        alpha, mask = load_alpha(tiny_bench / clip["paths"]["alpha"])
        assert alpha.shape == (clip["frames"], 120, 160)
        for name in ("subtitled", "clean"):
            assert (tiny_bench / clip["paths"][name]).stat().st_size > 1000
        if clip["language"] is None:
            assert not mask.any() and clip["cues"] == [] and clip["style"] is None
            assert (tiny_bench / clip["paths"]["subtitled"]).read_bytes() == \
                   (tiny_bench / clip["paths"]["clean"]).read_bytes()
        else:
            assert mask.any() and clip["text_frames"] == int(mask.reshape(len(mask), -1).any(1).sum())
            assert clip["cues"] and clip["style"]["key"] and clip["font"]["file"]
    assert not list(tiny_bench.rglob("*.partial*"))


def test_same_seed_gives_identical_files_and_another_seed_does_not(tiny_bench, tmp_path, bench_cli, tiny_args):
    again = tmp_path / "again"
    assert bench_cli("bench", "make", str(again), "--seed", "7", *tiny_args).returncode == 0
    first, second = files_of(tiny_bench), files_of(again)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []
    other = tmp_path / "other"
    assert bench_cli("bench", "make", str(other), "--seed", "8", "--split", "test", *tiny_args).returncode == 0
    other_manifest = json.loads((other / "manifest.json").read_text())
    assert set(other_manifest["splits"]) == {"test"}
    assert (other / "test/subtitled/test-00-ru-bigbuckbunny.mp4").read_bytes() != \
           (tiny_bench / "test/subtitled/test-00-ru-bigbuckbunny.mp4").read_bytes()


def test_dev_and_test_share_no_seed_font_text_or_style(tiny_bench):
    clips = load_manifest(tiny_bench)["clips"]
    by_split = {split: [c for c in clips if c["split"] == split] for split in ("dev", "test")}
    for key in ("seed",):
        assert not {c[key] for c in by_split["dev"]} & {c[key] for c in by_split["test"]}
    fonts = {s: {c["font"]["file"] + c["font"]["family"] for c in by_split[s] if c["font"]} for s in by_split}
    assert not fonts["dev"] & fonts["test"]
    styles = {s: {c["style"]["key"] for c in by_split[s] if c["style"]} for s in by_split}
    assert not styles["dev"] & styles["test"]
    for clip in clips:
        for cue in clip["cues"]:
            assert split_of_text(clip["language"], cue["text"]) == clip["split"]
    # Seeds across a full-size set, without building it.
    dev = {clip_seed(0, "dev", i) for i in range(500)}
    assert len(dev) == 500 and not dev & {clip_seed(0, "test", i) for i in range(500)}


def test_the_default_plan_meets_the_benchmark_requirements():
    config = BenchSetConfig()
    assert config.clips_per_split >= 12 and (config.min_seconds, config.max_seconds) == (2.0, 10.0)
    for split in ("dev", "test"):
        slots = [clip_slot(split, i) for i in range(config.clips_per_split)]
        languages = {language for *_, language in slots if language}
        assert len(languages) >= 5 and "ar" in languages and languages & {"zh", "ja", "ko"} and "ru" in languages
        assert sum(language is None for *_, language in slots) >= 3
        assert {height for _, _, height, _ in slots} == {240, 360, 480, 720}
        assert {kind for kind, *_ in slots} == {"video", "photo"}
        choices = [clip_style_choice(split, i, 0) for i in range(12) if clip_slot(split, i)[3]]
        assert {key.split("/")[1] for key, _ in choices} == {"outline", "shadow", "outline_shadow", "box"}
        assert {position for _, position in choices} == {"top", "bottom"}
        assert {key for key, _ in choices} <= set(style_keys(split))
    assert len(SLOTS) == 12


def test_bad_arguments_are_one_line_errors(tmp_path, bench_cli):
    for args, needle in ((["--size", "161x120"], "size must be even"),
                         (["--seconds", "3-1"], "min_seconds"),
                         (["--seconds", "x"], "--seconds: expected")):
        result = bench_cli("bench", "make", str(tmp_path / "bad"), *args)
        assert result.returncode == 2 and needle in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "bad" / "manifest.json").exists()
    result = bench_cli("bench", "run", str(tmp_path / "nothing"), "--backend", "lite")
    assert result.returncode == 1 and "bench make" in result.stderr
