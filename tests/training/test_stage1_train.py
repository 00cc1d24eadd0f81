"""Stage I on Ray Train, end to end on the session's 2-CPU cluster with pairs on real S3:
it learns, DDP is exact, a killed worker or driver costs only the steps since the last
checkpoint, and the export loads without pickles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import yaml

from clear_ray.config import load_config
from clear_ray.training.stage1.config import Stage1TrainConfig
from tests.training.conftest import tiny_settings

pytestmark = pytest.mark.slow


def _config(s3_server, pairs, output, **overrides) -> Stage1TrainConfig:
    return load_config(Stage1TrainConfig, env={}, overrides=tiny_settings(s3_server, pairs, output, **overrides))


def _wait_for_checkpoint(fs, output: str, name: str, timeout_s: float = 600) -> None:
    """Until Ray Train has *registered* a checkpoint of the run (its checkpoint manager
    writes this snapshot after; a checkpoint directory alone may still be uploading)."""
    snapshot = f"{output.removeprefix('s3://')}/runs/{name}/checkpoint_manager_snapshot.json"
    deadline = time.monotonic() + timeout_s
    while not fs.exists(snapshot):
        assert time.monotonic() < deadline, "no checkpoint was registered"
        time.sleep(0.5)
        fs.invalidate_cache()


def _kill_one_train_worker() -> int:
    """SIGKILL one Ray Train worker of *this* test session's cluster (a descendant of this
    process: Ray's raylet is our child), never anyone else's."""
    import psutil

    for process in psutil.Process().children(recursive=True):
        try:
            if "RayTrainWorker" in " ".join(process.cmdline()):
                process.kill()
                return process.pid
        except psutil.NoSuchProcess:
            continue
    raise AssertionError("no Ray Train worker process found")


def test_learns_survives_a_killed_worker_and_exports(ray_cluster, s3_server, s3_pairs):
    from safetensors.torch import load

    from clear_ray.pairs import read_index, read_pair
    from clear_ray.training.stage1 import load_prior, predict_masks
    from clear_ray.training.stage1.recipe import train_stage1

    bucket, pairs = s3_pairs
    output = f"{bucket}/learn"
    config = _config(s3_server, pairs, output, **{"run.name": "learn"})
    fs = s3_server.filesystem()
    killed = []

    def killer():
        _wait_for_checkpoint(fs, output, "learn")
        killed.append(_kill_one_train_worker())

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = train_stage1(config)
    thread.join(timeout=5)

    # The worker died after the first checkpoint; FailureConfig restarted the group from it.
    assert killed, "the killer thread found no worker"
    steps = [m["step"] for m in result.history]
    resumed = {m["resumed_from_step"] for m in result.history}
    assert result.step == 40 and steps[-1] == 40
    assert max(resumed) >= 10, f"no restart from a checkpoint: {result.history}"
    # It learns: mask loss falls, dev IoU against the true alpha rises.
    first, last = result.history[0], result.history[-1]
    assert last["loss_mask"] < 0.8 * first["loss_mask"], (first, last)
    assert last["dev_iou"] > first["dev_iou"] + 0.1, (first["dev_iou"], last["dev_iou"])
    print(f"\nstage1 tiny: dev IoU {first['dev_iou']:.3f} -> {last['dev_iou']:.3f} "
          f"(F1 {last['dev_f1']:.3f}); pseudo-label rule IoU {last['dev_pseudo_iou']:.3f} F1 {last['dev_pseudo_f1']:.3f}")

    # The export: safetensors + JSON, no pickles; Stage II's loader predicts masks with it.
    options = s3_server.storage_options()
    exported = load(fs.cat_file(result.export_uri.removeprefix("s3://")))
    assert any(k.startswith("subtitle_encoder.") for k in exported)
    assert not any(k.startswith("weighting.") for k in exported)
    network = load_prior(output, storage_options=options)
    rows = read_index(pairs, storage_options=options)
    dev_row = next(r for r in rows if r["split"] == "dev" and r["text_fraction"] > 0)
    frames = read_pair(dev_row, [0, 8], storage_options=options)
    masks = predict_masks(network, frames.subtitled_thwc_u8)
    assert masks.shape == frames.alpha_thw_u8.shape and masks.dtype == np.float32
    truth = frames.alpha_thw_u8 > 0
    assert masks[truth].mean() > masks[~truth].mean() + 0.2


def test_two_ddp_workers_make_the_same_update_as_one(ray_cluster, s3_server, s3_pairs):
    from safetensors.torch import load
    import torch

    from clear_ray.training.stage1.recipe import train_stage1

    bucket, pairs = s3_pairs
    fs = s3_server.filesystem()
    runs = {}
    for workers in (1, 2):
        output = f"{bucket}/ddp{workers}"
        config = _config(s3_server, pairs, output, max_steps=2, **{
            "run.workers": workers, "run.name": f"ddp{workers}", "run.report_every": 1, "run.checkpoint_every": 2,
            "data.max_dev_pairs": 1, "data.dev_frames_per_pair": 1})
        result = train_stage1(config)
        runs[workers] = (result, load(fs.cat_file(result.export_uri.removeprefix("s3://"))))
    (one, weights_one), (two, weights_two) = runs[1], runs[2]
    for a, b in zip(one.history, two.history):
        assert a["loss_total"] == pytest.approx(b["loss_total"], rel=1e-5)
    for name, tensor in weights_one.items():
        torch.testing.assert_close(weights_two[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    assert one.history[0]["loss_total"] != one.history[1]["loss_total"]  # the step changed the network


def test_killed_driver_resumes_from_its_checkpoint(ray_cluster, s3_server, s3_pairs, tmp_path):
    import ray

    from clear_ray.training.stage1.recipe import train_stage1

    bucket, pairs = s3_pairs
    output = f"{bucket}/resume"
    settings = tiny_settings(s3_server, pairs, output, max_steps=15, **{
        "run.name": "resume", "run.workers": 1, "run.checkpoint_every": 5, "run.report_every": 5,
        "data.max_dev_pairs": 1})
    nested: dict = {}
    for dotted, value in settings.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    config_file = tmp_path / "stage1.yaml"
    config_file.write_text(yaml.safe_dump(nested))
    address = ray.get_runtime_context().gcs_address
    driver = subprocess.Popen([sys.executable, "-m", "clear_ray", "train-stage1", "--config", str(config_file),
                               "--address", address], start_new_session=True)
    fs = s3_server.filesystem()
    try:
        _wait_for_checkpoint(fs, output, "resume")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert driver.returncode == -signal.SIGKILL

    result = train_stage1(load_config(Stage1TrainConfig, yaml_path=config_file, env={}))
    assert result.step == 15
    # The second driver started from the killed one's checkpoint, not from step 0; the
    # history it carries on holds the first driver's reports before that step.
    resumed_from = result.metrics["resumed_from_step"]
    assert resumed_from >= 5 and resumed_from % 5 == 0, result.metrics
    assert [m["step"] for m in result.history if m["step"] <= resumed_from] == list(range(5, resumed_from + 1, 5))
    assert all(m["resumed_from_step"] == resumed_from for m in result.history if m["step"] > resumed_from)
