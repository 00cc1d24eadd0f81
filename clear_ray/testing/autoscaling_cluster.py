"""A simulated multi-node autoscaling Ray cluster on this machine.

Ray's fake multi-node node provider starts each "node" the autoscaler launches as one
more raylet (with its own resources, e.g. a fake GPU) on this machine. Ray's own wrapper
(``ray.cluster_utils.AutoscalingCluster``) runs ``ray stop --force``, which would kill
every Ray process on the machine, and reads an ``example.yaml`` the PyPI wheel lacks. So
the cluster YAML is written here, the provider is loaded as an ``external`` one (whose
defaults need no file), the head is a ``ray start --head --autoscaling-config`` of our
own (``RAY_FAKE_CLUSTER=1``, autoscaler loop every second), and ``stop()`` ends exactly
the processes this cluster started: the head's process group, its descendants, and the
worker raylets that name this cluster's GCS port.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clear_ray.testing.ray_head import RayHead
from clear_ray.testing.s3_server import free_port

FAKE_PROVIDER = "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider"
MIB = 1024 * 1024


@dataclass
class WorkerType:
    resources: dict[str, float]  # e.g. {"CPU": 1, "GPU": 1}
    min_workers: int = 0
    max_workers: int = 2
    object_store_bytes: int = 100 * MIB


@dataclass
class AutoscalingCluster:
    head_cpus: int = 1
    worker_types: dict[str, WorkerType] = field(default_factory=dict)
    idle_timeout_minutes: float = 5.0
    startup_timeout_s: float = 120.0
    head: RayHead | None = None

    def cluster_config(self, gcs_address: str) -> dict[str, Any]:
        """The cluster YAML the head's autoscaler reads."""
        node_types: dict[str, Any] = {
            "ray.head.default": {"resources": {"CPU": self.head_cpus}, "node_config": {}, "max_workers": 0},
        }
        for name, worker in self.worker_types.items():
            node_types[name] = {"resources": {**worker.resources, "object_store_memory": worker.object_store_bytes},
                                "node_config": {}, "min_workers": worker.min_workers,
                                "max_workers": worker.max_workers}
        return {
            "cluster_name": "clear-ray-fake",
            "max_workers": sum(w.max_workers for w in self.worker_types.values()),
            "upscaling_speed": 10.0,
            "idle_timeout_minutes": self.idle_timeout_minutes,
            "provider": {"type": "external", "module": FAKE_PROVIDER, "gcs_address": gcs_address,
                         "use_node_id_as_ip": True, "disable_node_updaters": True,
                         "disable_launch_config_check": True},
            "auth": {},
            "available_node_types": node_types,
            "head_node_type": "ray.head.default",
            "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
            "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [], "setup_commands": [],
            "head_setup_commands": [], "worker_setup_commands": [], "head_start_ray_commands": [],
            "worker_start_ray_commands": [],
        }

    def start(self, env: dict[str, str] | None = None) -> "AutoscalingCluster":
        import tempfile

        temp_dir = Path(tempfile.mkdtemp(prefix="cra-", dir="/tmp"))
        gcs_port = free_port()
        config_file = temp_dir / "cluster.yaml"
        config_file.write_text(yaml.safe_dump(self.cluster_config(f"127.0.0.1:{gcs_port}")))
        self.head = RayHead(num_cpus=self.head_cpus, num_gpus=0, temp_dir=temp_dir,
                            startup_timeout_s=self.startup_timeout_s,
                            extra_args=[f"--autoscaling-config={config_file}"])
        self.head.start(env={**(env or {}), "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"},
                        gcs_port=gcs_port)
        return self

    @property
    def address(self) -> str:
        return self.head.address

    def stop(self) -> None:
        if self.head is None:
            return
        ours = self._our_processes()
        self.head.stop()
        _kill_all(ours)
        self.head = None

    def _our_processes(self) -> list:
        """The head's descendants, and every process whose command line names our GCS
        port or temp dir (the raylets and workers the autoscaler started as "nodes")."""
        import psutil

        found: dict[int, Any] = {}
        process = self.head._process
        if process is not None:
            try:
                root = psutil.Process(process.pid)
                for child in root.children(recursive=True):
                    found[child.pid] = child
            except psutil.NoSuchProcess:
                pass
        marks = (f"127.0.0.1:{self.head.gcs_port}", str(self.head.temp_dir))
        for candidate in psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(candidate.info.get("cmdline") or ())
            if candidate.pid != os.getpid() and any(mark in cmdline for mark in marks):
                found[candidate.pid] = candidate
        return list(found.values())

    def __enter__(self) -> "AutoscalingCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _kill_all(processes: list, timeout_s: float = 10.0) -> None:
    import psutil

    for process in processes:
        try:
            process.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=timeout_s)
