"""Removers for tests, loaded through ``remover.plugin`` like any user plugin.

- ``CountingRemover``: identity that logs one line per finished call (the chunk's content
  hash, the process id, the Ray node id) to ``plugin_options["calls_file"]``, and one per
  started call to ``plugin_options["starts_file"]`` if given; it can sleep (before its
  finished line), so tests can count remover calls across processes and runs, and kill a
  job or an actor mid-way. With ``plugin_options["wait_for_nodes"]`` = N (and a
  ``nodes_file``) a call first waits, bounded, until removers on N distinct Ray nodes have
  started: a test of spreading over nodes then does not depend on how fast the machine
  brings the later nodes up. ``GpuCountingRemover`` is the same asking for a GPU.
- ``BarcodeCopyRemover``: reads the frame-index barcode that the test clip carries at the
  top and stamps the same index at the bottom, with mask 1 there only: the output proves
  that every replaced region landed on the right source frame, through overlaps too.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import ClassVar

import numpy as np

from clear_ray.removers.base import RemovalResult

BARCODE_BITS = 12
BARCODE_BLOCK = 8  # pixels per bit: survives H.264 at CRF 17


class _TestRemover:
    """What every test remover shares: a fixed fingerprint, CPU only."""

    name: ClassVar[str] = "test"
    wants_gpu: ClassVar[bool] = False

    @classmethod
    def fingerprint_for(cls, config) -> str:
        return "v1"

    def fingerprint(self) -> str:
        return "v1"


class CountingRemover(_TestRemover):
    name: ClassVar[str] = "counting"

    def __init__(self, config, device: str = "cpu"):
        self.calls_file = config.plugin_options["calls_file"]
        self.starts_file = config.plugin_options.get("starts_file")
        self.sleep_s = float(config.plugin_options.get("sleep_s", 0.0))
        self.device = device
        self.node = _node_id()
        self.wait_for_nodes = int(config.plugin_options.get("wait_for_nodes", 0))
        self.nodes_file = config.plugin_options.get("nodes_file")
        if self.nodes_file:
            _append_line(self.nodes_file, self.node)

    def _wait_for_nodes(self, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with open(self.nodes_file) as lines:
                if len({line.strip() for line in lines if line.strip()}) >= self.wait_for_nodes:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"removers on {self.wait_for_nodes} nodes did not start within {timeout_s:.0f} s")

    def remove(self, frames_thwc_u8: np.ndarray) -> RemovalResult:
        if self.wait_for_nodes:
            self._wait_for_nodes()
        digest = hashlib.sha256(frames_thwc_u8.tobytes()).hexdigest()[:16]
        if self.starts_file:
            _append_line(self.starts_file, f"{digest} {os.getpid()} {self.node}")
        time.sleep(self.sleep_s)
        _append_line(self.calls_file, f"{digest} {os.getpid()} {self.node}")
        return RemovalResult(frames_thwc_u8, np.zeros(frames_thwc_u8.shape[:3], np.float32))


class GpuCountingRemover(CountingRemover):
    name: ClassVar[str] = "gpu-counting"
    wants_gpu: ClassVar[bool] = True


def _append_line(path: str, line: str) -> None:
    # One short O_APPEND write per line: atomic across concurrent actors.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def stamp_barcode(frame_hwc_u8: np.ndarray, value: int, row: int) -> None:
    """Write ``value`` as BARCODE_BITS black/white blocks starting at pixel row ``row``."""
    for bit in range(BARCODE_BITS):
        level = 255 if (value >> bit) & 1 else 0
        frame_hwc_u8[row:row + BARCODE_BLOCK, bit * BARCODE_BLOCK:(bit + 1) * BARCODE_BLOCK] = level


def read_barcode(frame_hwc_u8: np.ndarray, row: int) -> int:
    value = 0
    for bit in range(BARCODE_BITS):
        block = frame_hwc_u8[row + 2:row + BARCODE_BLOCK - 2, bit * BARCODE_BLOCK + 2:(bit + 1) * BARCODE_BLOCK - 2]
        if block.mean() > 127:
            value |= 1 << bit
    return value


class BarcodeCopyRemover(_TestRemover):
    name: ClassVar[str] = "barcode-copy"

    def __init__(self, config, device: str = "cpu"):
        pass

    def remove(self, frames_thwc_u8: np.ndarray) -> RemovalResult:
        frames = frames_thwc_u8.copy()
        mask = np.zeros(frames.shape[:3], np.float32)
        bottom = frames.shape[1] - BARCODE_BLOCK
        for t in range(frames.shape[0]):
            stamp_barcode(frames[t], read_barcode(frames[t], row=0), row=bottom)
            mask[t, bottom:, :BARCODE_BITS * BARCODE_BLOCK] = 1.0
        return RemovalResult(frames, mask)


class GpuHungryIdentity(CountingRemover):
    """Identity that asks for a GPU, like CLEAR: exercises the GPU-less fallback."""

    name: ClassVar[str] = "gpu-hungry-identity"
    wants_gpu: ClassVar[bool] = True

    def __init__(self, config, device: str = "cpu"):
        self.device = device

    def remove(self, frames_thwc_u8: np.ndarray) -> RemovalResult:
        return RemovalResult(frames_thwc_u8, np.zeros(frames_thwc_u8.shape[:3], np.float32))


class HangingRemover(GpuHungryIdentity):
    """Hangs forever on frames of one width: a stand-in for a decoder that never returns."""

    name: ClassVar[str] = "hanging"
    wants_gpu: ClassVar[bool] = False

    def __init__(self, config, device: str = "cpu"):
        self.hang_on_width = int(config.plugin_options["hang_on_width"])

    def remove(self, frames_thwc_u8: np.ndarray) -> RemovalResult:
        while frames_thwc_u8.shape[2] == self.hang_on_width:
            time.sleep(1.0)
        return super().remove(frames_thwc_u8)


class DiesOnFirstLoad(CountingRemover):
    """Kills its process while "loading the model" the first time (a flag file remembers
    across processes): an actor that dies during start-up, like one hitting OOM."""

    name: ClassVar[str] = "dies-on-first-load"

    def __init__(self, config, device: str = "cpu"):
        flag = config.plugin_options["died_flag"]
        try:
            os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            super().__init__(config, device)
            return
        os._exit(71)
