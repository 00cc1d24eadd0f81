"""What a run does with each input, given the manifest's latest row for it.

The resume key is (input fingerprint, model fingerprint, config fingerprint): an input is
skipped only when its latest successful row matches all three and the output still
exists. Failures count per input *version*: a broken file is quarantined at once, a
transient failure (a crashed or timed-out worker) is retried on later runs until
``max_attempts``, and storage that stayed unreachable is retried without counting; a changed input (new
fingerprint) starts over, and ``--retry-failed`` / ``--force`` override.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clear_ray.catalog import InputVideo
from clear_ray.manifest import ManifestRow

Action = Literal["process", "skip", "quarantined"]


@dataclass(frozen=True)
class Decision:
    action: Action
    previous_attempts: int  # consecutive failures of this input version before this run
    reason: str


def decide(video: InputVideo, latest: ManifestRow | None, *, model_fingerprint: str, config_fingerprint: str,
           output_exists: bool, force: bool = False, retry_failed: bool = False, max_attempts: int = 3) -> Decision:
    if latest is None or latest.input_fingerprint != video.fingerprint:
        reason = "new input" if latest is None else "input changed"
        return Decision("process", 0, reason)
    if force:
        return Decision("process", 0, "--force")

    if latest.status in ("done", "skipped"):
        if latest.model_fingerprint != model_fingerprint:
            return Decision("process", 0, "model changed")
        if latest.config_fingerprint != config_fingerprint:
            return Decision("process", 0, "settings changed")
        if not output_exists:
            return Decision("process", 0, "output missing")
        return Decision("skip", 0, "done with the same input, model and settings")

    attempts = latest.attempts
    if retry_failed:
        return Decision("process", 0, "--retry-failed")
    if latest.error_kind == "storage":  # storage was unreachable: never the input's fault
        return Decision("process", attempts, "storage was unreachable last time")
    if latest.error_kind == "input" or attempts >= max_attempts:
        why = "the file is broken" if latest.error_kind == "input" else f"failed {attempts} times"
        return Decision("quarantined", attempts, f"{why}: {latest.error}")
    return Decision("process", attempts, f"retry {attempts + 1}/{max_attempts}")
