"""A separate Ray head node on loopback (`ray start --head --block`), as a real cluster
that drivers and `ray job submit` connect to. Every port is chosen free so it can run
next to the test session's own `ray.init()` cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from clear_ray.testing.s3_server import free_port, stop_process_group

_PORT_FLAGS = (
    "port", "node-manager-port", "object-manager-port", "dashboard-port", "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port", "ray-client-server-port",
)


@dataclass
class RayHead:
    num_cpus: int = 2
    num_gpus: int = 0
    object_store_bytes: int = 500 * 1024 * 1024
    startup_timeout_s: float = 90.0
    address: str = ""  # GCS address for ray.init(address=...) / --address
    dashboard_url: str = ""  # for `ray job submit --address`
    temp_dir: Path | None = None
    extra_args: list[str] = field(default_factory=list)  # more `ray start` flags
    gcs_port: int = 0  # chosen at start
    _process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, env: dict[str, str] | None = None, gcs_port: int | None = None) -> "RayHead":
        # Short path: Ray's unix sockets live under it and must stay < 108 characters.
        self.temp_dir = self.temp_dir or Path(tempfile.mkdtemp(prefix="crh-", dir="/tmp"))
        worker_low = free_port()
        worker_ports = range(worker_low, worker_low + 201)
        ports: dict[str, int] = {}
        for flag in _PORT_FLAGS:  # distinct, and outside the worker port range
            port = gcs_port if flag == "port" and gcs_port else free_port()
            while port in worker_ports or port in ports.values():
                port = free_port()
            ports[flag] = port
        ray_cli = Path(sys.executable).parent / "ray"
        command = [str(ray_cli) if ray_cli.exists() else shutil.which("ray") or "ray", "start", "--head", "--block", "--disable-usage-stats",
                   "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", "--include-dashboard=true",
                   f"--num-cpus={self.num_cpus}", f"--num-gpus={self.num_gpus}",
                   f"--object-store-memory={self.object_store_bytes}", f"--temp-dir={self.temp_dir}",
                   f"--min-worker-port={worker_ports.start}", f"--max-worker-port={worker_ports.stop - 1}"]
        command += [f"--{flag}={port}" for flag, port in ports.items()]
        command += self.extra_args
        self.gcs_port = ports["port"]
        self._log = open(self.temp_dir / "head.log", "wb")
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                         env=dict(os.environ, **(env or {})), start_new_session=True)
        self.address = f"127.0.0.1:{ports['port']}"
        self.dashboard_url = f"http://127.0.0.1:{ports['dashboard-port']}"
        self._wait_until_ready(token=(env or {}).get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN"))
        return self

    def stop(self) -> None:
        # Kill our process group only: `ray stop` would also kill every other local cluster.
        stop_process_group(self._process, timeout_s=10)
        self._process = None
        if getattr(self, "_log", None):
            self._log.close()
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "RayHead":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_until_ready(self, token: str | None) -> None:
        import urllib.request

        request = urllib.request.Request(f"{self.dashboard_url}/api/version")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"ray head exited with {self._process.returncode}; see {self.temp_dir}/head.log")
            try:
                # The job API answers once the dashboard and its job manager are up.
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1.0)
        log = (self.temp_dir / "head.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"ray head did not come up within {self.startup_timeout_s}s:\n{log}")
