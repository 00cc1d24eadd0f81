"""A test remover that proves the actor decodes one chunk while another is on the model.

``OverlapRecordingRemover`` is ``BarcodeCopyRemover`` (its output shows every replaced
region on the right source frame) with ``overlap_decode``, and it logs to
``plugin_options["events_file"]`` one line per event, ``<event> <first barcode> <time>``:

- ``decode`` when the actor starts decoding a chunk (it wraps ``clear_ray.media.decode``
  in its own process: the actor looks the function up at call time);
- ``remove-start`` / ``remove-end`` around each ``remove``.

So that the test does not depend on timing, the first ``remove`` waits (at most
``wait_s``) until the actor has started decoding another chunk: with overlap that happens
at once; without it the wait runs out, logs ``no-overlap``, and the test fails.
"""

from __future__ import annotations

import threading
import time
from typing import ClassVar

import numpy as np

from clear_ray.removers.base import RemovalResult
from clear_ray.testing.removers import BarcodeCopyRemover, _append_line, read_barcode


class OverlapRecordingRemover(BarcodeCopyRemover):
    name: ClassVar[str] = "overlap-recording"
    overlap_decode: ClassVar[bool] = True

    def __init__(self, config, device: str = "cpu"):
        import clear_ray.media

        self.events_file = config.plugin_options["events_file"]
        self.wait_s = float(config.plugin_options.get("wait_s", 60.0))
        self._decodes = 0
        self._second_decode = threading.Event()
        self._first_remove = True
        real_decode = clear_ray.media.decode

        def recording_decode(uri, start, stop, **kwargs):
            _append_line(self.events_file, f"decode {start} {time.time():.6f}")
            self._decodes += 1
            if self._decodes >= 2:
                self._second_decode.set()
            return real_decode(uri, start, stop, **kwargs)

        clear_ray.media.decode = recording_decode

    def remove(self, frames_thwc_u8: np.ndarray) -> RemovalResult:
        first = read_barcode(frames_thwc_u8[0], row=0)
        _append_line(self.events_file, f"remove-start {first} {time.time():.6f}")
        if self._first_remove:
            self._first_remove = False
            if not self._second_decode.wait(self.wait_s):
                _append_line(self.events_file, f"no-overlap {first} {time.time():.6f}")
        result = super().remove(frames_thwc_u8)
        _append_line(self.events_file, f"remove-end {first} {time.time():.6f}")
        return result
