"""Where a job keeps its intermediate state next to DST.

``DST/_staging/<input key>/<model fp>-<config fp>/`` holds, for one input version and one
model/settings combination: ``plan.json`` (probe + chunk plan), staged chunks, encoded
segments and attempt markers. The key includes every fingerprint, so a changed input,
model or setting can never reuse stale pieces; a finished video's directory is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from clear_ray import storage

STAGING_DIR = "_staging"


@dataclass(frozen=True)
class VideoStaging:
    root: str

    @classmethod
    def for_video(cls, dst: str, input_key: str, model_fingerprint: str, config_fingerprint: str) -> "VideoStaging":
        return cls(storage.join(dst, STAGING_DIR, input_key, f"{model_fingerprint}-{config_fingerprint}"))

    @property
    def input_dir(self) -> str:
        """All staging of this input version (any model/settings)."""
        return self.root.rsplit("/", 1)[0]

    @property
    def plan_uri(self) -> str:
        return storage.join(self.root, "plan.json")

    @property
    def chunks_dir(self) -> str:
        return storage.join(self.root, "chunks")

    @property
    def segments_dir(self) -> str:
        return storage.join(self.root, "segments")

    @property
    def markers_dir(self) -> str:
        return storage.join(self.root, "attempts")

    def segment_uri(self, segment_index: int) -> str:
        return storage.join(self.segments_dir, f"segment-{segment_index:06d}.mp4")

    @staticmethod
    def segment_index_of(name: str) -> int | None:
        base = name.rstrip("/").rsplit("/", 1)[-1]
        if base.startswith("segment-") and base.endswith(".mp4"):
            return int(base[len("segment-"):-len(".mp4")])
        return None
