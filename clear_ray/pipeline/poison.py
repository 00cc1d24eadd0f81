"""Inputs that kill workers: attempt markers and a watchdog.

Ray Data restarts a dead actor and retries its task forever by default, so a video whose
decoding crashes the process, hangs or exhausts memory would stall a job. Before risky
work on one item we write an attempt marker next to DST; a clean finish (success or a
caught error) removes it. A marker left behind means a previous attempt died. Once
``max_deaths`` markers exist the item is failed with a one-line reason instead of being
tried again. A watchdog thread turns a hang into a death: past the time limit it records
the reason in the marker and exits the worker process, which Ray then replaces.

Only deaths within one run count: Ray retries a dead worker's task in the same run, and
that retry sees the marker. A killed or pre-empted *driver* also leaves markers behind
(its workers die with it), which says nothing about the input, so each run, once it holds
the DST lease, discards the markers of earlier runs before any work
(``clear_ray.pipeline.job``). Killing the driver any number of times quarantines nothing.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from clear_ray import storage


class PoisonedInput(RuntimeError):
    """Raised instead of touching an item whose previous attempts killed their worker."""


class AttemptGuard:
    def __init__(self, markers_dir: str, item: str, *, max_deaths: int, time_limit_s: float,
                 storage_options: dict | None = None):
        self.markers_dir = markers_dir
        self.item = item
        self.max_deaths = max_deaths
        self.time_limit_s = time_limit_s
        self.storage_options = storage_options
        self._marker = storage.join(markers_dir, f"{item}.{uuid.uuid4().hex[:10]}")
        self._finished = threading.Event()

    def __enter__(self) -> "AttemptGuard":
        deaths = self._previous_deaths()
        if len(deaths) >= self.max_deaths:
            reasons = sorted({reason for reason in deaths if reason})
            raise PoisonedInput(f"killed its worker {len(deaths)} times ({'; '.join(reasons) or 'crash'})")
        storage.write_bytes_atomic(self._marker, b"crashed or ran out of memory", self.storage_options)
        threading.Thread(target=self._watchdog, daemon=True, name=f"watchdog-{self.item}").start()
        return self

    def __exit__(self, *exc) -> None:
        # Reached on success and on a caught Python exception alike: not a death.
        self._finished.set()
        storage.remove_tree(self._marker, self.storage_options)

    def _previous_deaths(self) -> list[str]:
        fs, path = storage.filesystem(self.markers_dir, self.storage_options)

        def read() -> list[str]:
            try:
                listing = fs.ls(path, detail=False)
            except FileNotFoundError:
                return []
            prefix = f"{self.item}."
            names = [n for n in listing if n.rstrip("/").rsplit("/", 1)[-1].startswith(prefix)]
            return [fs.cat_file(n).decode(errors="replace") for n in names]

        return storage.retry(read, what=f"read attempt markers of {self.item}")

    def _watchdog(self) -> None:
        if self._finished.wait(self.time_limit_s):
            return
        try:
            reason = f"timed out after {self.time_limit_s:g} s"
            storage.write_bytes_atomic(self._marker, reason.encode(), self.storage_options)
        finally:
            # A hung decoder cannot be interrupted from Python: end the process; Ray starts a
            # fresh worker and the retry sees this marker.
            time.sleep(0.1)
            os._exit(70)


def discard_markers(staging_root_uri: str, storage_options: dict | None = None) -> int:
    """Delete every attempt marker under ``staging_root_uri`` (``DST/_staging``): the
    markers of earlier, interrupted runs. Call only while holding the DST lease."""
    fs, path = storage.filesystem(staging_root_uri, storage_options)

    def discard() -> int:
        try:
            names = fs.find(path)
        except FileNotFoundError:
            return 0
        markers = [n for n in names if "/attempts/" in n]
        if markers:
            fs.rm(markers)
        return len(markers)

    return storage.retry(discard, what="discard attempt markers of interrupted runs")
