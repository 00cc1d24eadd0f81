"""SIGKILL the `clear-ray train-stage2` driver mid-run; running it again resumes at the checkpoint."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

pytestmark = pytest.mark.slow


def _registered_step(output: str) -> int | None:
    """The step of the latest checkpoint Ray Train has registered (its snapshot file names
    it only once the upload is complete; a resumed run starts from that one)."""
    try:
        snapshot = json.loads(open(os.path.join(output, "runs", "t", "checkpoint_manager_snapshot.json")).read())
    except (OSError, ValueError):
        return None
    latest = snapshot.get("latest_checkpoint_result")
    return int(latest["metrics"]["step"]) if latest else None


def test_killed_driver_resumes_at_the_checkpointed_step(ray_cluster, stage2_pairs, stage2_model_dir, tmp_path):
    import ray

    output = str(tmp_path / "out")
    settings = {"frames": 5, "width": 32, "height": 32, "batch_size": 2, "lora": {"rank": 4, "alpha": 8.0},
                "optim": {"lr": 0.01}, "gradient_checkpointing": False,
                "run": {"name": "t", "report_every": 1, "checkpoint_every": 2, "max_failures": 0}}
    (tmp_path / "stage2.yaml").write_text(yaml.safe_dump(settings))
    command = [sys.executable, "-m", "clear_ray", "train-stage2", "--pairs", stage2_pairs, "--model-dir",
               str(stage2_model_dir), "--output", output, "--max-steps", "8", "--config", str(tmp_path / "stage2.yaml"),
               "--address", ray.get_runtime_context().gcs_address]

    # 1. Start, wait for the first checkpoint, SIGKILL the driver (no clean-up runs).
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    while _registered_step(output) is None and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert driver.poll() is None, "the driver ended before its first checkpoint"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    killed_at = _registered_step(output)
    assert killed_at is not None and 2 <= killed_at < 8
    assert not os.path.exists(os.path.join(output, "export")), "the killed run must not have finished"

    # 2. The same command again: it resumes from the latest checkpoint and finishes.
    time.sleep(3)  # let Ray reap the dead driver's workers and free their CPUs
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "step 8" in done.stdout
    summary = json.loads(open(os.path.join(output, "export", "stage2.json")).read())
    resumed_from = summary["metrics"]["resumed_from_step"]
    print(f"killed after checkpoint step {killed_at}; re-run resumed from step {resumed_from}, finished at 8")
    assert resumed_from >= killed_at and summary["step"] == 8
