"""`bench run`'s fast loop: the reference-row cache and the one-task-per-clip scoring."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from clear_ray.evaluation import reference_cache
from clear_ray.evaluation.bench import INPUT_ROW, ORACLE_ROW, run_bench
from clear_ray.evaluation.benchset import load_manifest
from clear_ray.evaluation.clip_scoring import BackendOutput, ClipTask, MaskSpec
from clear_ray.evaluation.parallel import score_clips
from clear_ray.evaluation.perceptual import PerceptualConfig


def quiet(line: str) -> None:
    pass


def reference_rows(report, clip_id: str | None = None) -> str:
    """The input/oracle rows as JSON text (NaN compares equal to NaN there)."""
    return json.dumps([r for r in report.clips if r["method"] in (INPUT_ROW, ORACLE_ROW)
                       and clip_id in (None, r["clip"])], sort_keys=True)


@pytest.fixture
def bench_copy(tiny_bench, tmp_path):
    """A private copy: these tests write the cache and edit a clip."""
    directory = tmp_path / "set"
    shutil.copytree(tiny_bench, directory, ignore=shutil.ignore_patterns("cache", "results"))
    return directory


def test_second_run_reads_the_reference_rows_and_a_changed_clip_is_scored_again(bench_copy, tmp_path, monkeypatch):
    """Serial scoring (no Ray needed for the cache logic; parallel == serial is tested below)."""
    from clear_ray.synth.video_io import read_video, write_video

    monkeypatch.setitem(sys.modules, "clear_ray.pipeline", None)  # only the reference rows matter here
    first = run_bench(bench_copy, "lite", "test", work_dir=tmp_path, log=quiet, serial=True)
    assert (first.reference_computed, first.reference_cached) == (3, 0)
    assert reference_cache.cache_path(bench_copy).is_file()
    assert not list(reference_cache.cache_path(bench_copy).parent.glob("*.partial"))

    second = run_bench(bench_copy, "identity", "test", work_dir=tmp_path, log=quiet, serial=True)
    assert (second.reference_computed, second.reference_cached) == (0, 3)
    assert reference_rows(second) == reference_rows(first)

    # Re-encode one clip's subtitled video 12 levels brighter: only that clip is scored again.
    clip = next(c for c in load_manifest(bench_copy)["clips"] if c["split"] == "test" and c["language"])
    path = bench_copy / clip["paths"]["subtitled"]
    frames, fps = read_video(path)
    write_video(path, np.clip(frames.astype(np.int16) + 12, 0, 255).astype(np.uint8), fps)
    third = run_bench(bench_copy, "identity", "test", work_dir=tmp_path, log=quiet, serial=True)
    assert (third.reference_computed, third.reference_cached) == (1, 2)
    assert reference_rows(third, clip["id"]) != reference_rows(first, clip["id"])
    others = [c["id"] for c in load_manifest(bench_copy)["clips"] if c["split"] == "test" and c["id"] != clip["id"]]
    assert all(reference_rows(third, other) == reference_rows(first, other) for other in others)

    # --no-cache computes everything and leaves the cache file as it was.
    before = reference_cache.cache_path(bench_copy).read_bytes()
    fourth = run_bench(bench_copy, "identity", "test", work_dir=tmp_path, log=quiet, use_cache=False,
                       serial=True)
    assert (fourth.reference_computed, fourth.reference_cached) == (3, 0)
    assert reference_cache.cache_path(bench_copy).read_bytes() == before


def test_the_key_follows_the_clip_the_metric_code_and_the_weights(tiny_bench, tmp_path):
    clip = load_manifest(tiny_bench)["clips"][0]
    none = PerceptualConfig().fingerprint()
    key = reference_cache.entry_key(tiny_bench, clip, "code-a", none)
    assert key == reference_cache.entry_key(tiny_bench, clip, "code-a", none)
    assert key != reference_cache.entry_key(tiny_bench, clip, "code-b", none)
    assert key != reference_cache.entry_key(tiny_bench, {**clip, "frames": clip["frames"] + 1}, "code-a", none)
    weights = tmp_path / "alexnet.pth"
    weights.write_bytes(b"x")
    assert key != reference_cache.entry_key(tiny_bench, clip, "code-a",
                                            PerceptualConfig(lpips_weights=weights).fingerprint())
    version = reference_cache.metric_code_version()
    assert len(version) == 16 and version == reference_cache.metric_code_version()
    # A corrupt cache file is an empty cache, not an error.
    broken = tmp_path / "broken"
    (broken / "cache").mkdir(parents=True)
    reference_cache.cache_path(broken).write_text("{not json")
    assert reference_cache.load(broken) == {}


def test_parallel_scores_equal_serial_scores(tiny_bench, ray_cluster):
    """Same tasks, one Ray task per clip vs one after another here: identical results.
    The "backend" output is the clean clip (a perfect remover) so every column is filled."""
    from clear_ray.config import RemoverConfig

    clips = [c for c in load_manifest(tiny_bench)["clips"] if c["split"] == "test"]
    tasks = [ClipTask(bench_dir=str(tiny_bench), clip=clip, backend="perfect",
                      output=BackendOutput(str(tiny_bench / clip["paths"]["clean"]), 1.5, "done"),
                      perceptual=PerceptualConfig(), mask=MaskSpec(RemoverConfig(backend="identity"), 21, 4, "cosine"))
             for clip in clips]
    serial = score_clips(tasks, serial=True)
    parallel = score_clips(tasks)

    def scores(results):
        """Every number but the oracle's measured Telea time (a clock reading, not a score)."""
        rows = [row for r in results for row in [*r["reference"]["rows"], r["backend_row"]]]
        timeless = [{k: v for k, v in row.items() if not (k == "seconds_per_frame" and row["method"] == ORACLE_ROW)}
                    for row in rows]
        return json.dumps([timeless, [r["reference"]["vfid"] for r in results]], sort_keys=True)

    assert scores(parallel) == scores(serial)
    assert len(json.loads(scores(serial))[0]) == 9
    assert all(r["reference_computed"] for r in serial)
    for result in serial:
        row = result["backend_row"]
        assert row["status"] == "done" and row["psnr_full"] == 100.0 and row["mask_fpr"] == 0.0
