"""The job on a simulated multi-node autoscaling cluster: a head without GPU, GPU worker
nodes from 0 to 2. A GPU remover makes the autoscaler start GPU nodes, the chunks of one
video run on both, and the output is exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from clear_ray.chunking import plan_chunks
from tests.pipeline.helpers import SEGMENT_FRAMES, stream_signature

REPO = Path(__file__).resolve().parents[2]

# In a driver process of its own: this test session's own Ray cluster may be connected.
DRIVER = """
import json, sys
from clear_ray.config import RemoveJobConfig, load_config
from clear_ray.pipeline import run_remove_job
overrides = json.loads(sys.argv[1])
summary = run_remove_job(load_config(RemoveJobConfig, overrides=overrides, env={}))
print("RESULT", json.dumps({"statuses": [r.status for r in summary.rows], "chunk_nodes": summary.chunk_nodes}))
"""


@pytest.fixture
def autoscaling_cluster():
    from clear_ray.testing.autoscaling_cluster import AutoscalingCluster, WorkerType

    cluster = AutoscalingCluster(head_cpus=1, worker_types={
        "gpu_worker": WorkerType(resources={"CPU": 1, "GPU": 1}, min_workers=0, max_workers=2)}).start()
    yield cluster
    cluster.stop()


@pytest.mark.slow
def test_gpu_nodes_are_added_and_one_videos_chunks_spread_over_them(autoscaling_cluster, make_clip, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    make_clip("long.mp4", frames=57, width=64, height=48).rename(src / "long.mp4")
    calls = tmp_path / "calls.log"
    overrides = {
        "src": str(src), "dst": str(dst), "ray.address": autoscaling_cluster.address,
        "remover.plugin": "clear_ray.testing.removers:GpuCountingRemover",
        # Chunks wait until removers run on both GPU nodes: on a loaded machine the second
        # node can come up after the first actor has removed every chunk.
        "remover.plugin_options": {"calls_file": str(calls), "sleep_s": 1.0, "wait_for_nodes": 2,
                                   "nodes_file": str(tmp_path / "nodes.log")},
        "chunking.chunk_size": 9, "chunking.overlap": 2, "chunking.segment_frames": SEGMENT_FRAMES,
        "output.preset": "ultrafast", "ray.min_actors": 2, "ray.max_actors": 2,
        # Every fake node is this machine: the local SRC and DST are shared by construction.
        "ray.shared_filesystem": True, "ray.gpu_wait_s": 240, "quiet": True}
    result = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(overrides)], capture_output=True, text=True,
                            timeout=600, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    # The job asked for GPUs the head does not have: the wait message, then GPU nodes.
    assert "waiting up to 240 s for the autoscaler" in result.stderr
    report = json.loads([line for line in result.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])
    assert report["statuses"] == ["done"]

    chunks = plan_chunks(57, 9, 2)
    nodes_by_chunk = {int(k): v for k, v in report["chunk_nodes"]["long.mp4"].items()}
    assert sorted(nodes_by_chunk) == [c.index for c in chunks]
    head_node = "f" * 51 + "00000"  # the fake provider's head id: no remover ran there
    assert head_node not in nodes_by_chunk.values()
    assert len(set(nodes_by_chunk.values())) >= 2, f"one video's chunks ran on one node: {nodes_by_chunk}"
    # The remover's own record agrees, and every chunk was computed exactly once.
    lines = [line.split() for line in calls.read_text().splitlines()]
    assert Counter(line[0] for line in lines).most_common(1)[0][1] == 1 and len(lines) == len(chunks)
    assert {line[2] for line in lines} == set(nodes_by_chunk.values())
    assert stream_signature(str(dst / "long.mp4")) == stream_signature(str(src / "long.mp4"))
