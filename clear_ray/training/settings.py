"""The Ray Train settings every trainer shares (workers, checkpoints, failures, storage)."""

from __future__ import annotations

from pydantic import Field, field_validator

from clear_ray.config import StorageConfig, StrictModel


class RayTrainSettings(StrictModel):
    """How a training run is spread over the cluster and made durable.

    Running again with the same ``name`` and output resumes from that run's latest
    checkpoint (Ray Train V2 semantics).
    """

    name: str = Field("stage1", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
                      description="run name: checkpoints live under OUTPUT/runs/NAME")
    address: str | None = Field(None, description="existing cluster (auto, host:port); None starts a local one")
    workers: int = Field(1, ge=1, le=4096, description="DDP workers")
    gpus_per_worker: float = Field(0.0, ge=0.0, le=8.0, description="0 = train on CPU")
    cpus_per_worker: float = Field(1.0, gt=0.0, le=256.0)
    report_every: int = Field(50, ge=1, description="steps between metric reports (and dev evaluation)")
    checkpoint_every: int = Field(500, ge=1, description="steps between checkpoints")
    keep_checkpoints: int = Field(3, ge=1, le=1000, description="CheckpointConfig(num_to_keep)")
    max_failures: int = Field(3, ge=-1, le=1000, description="worker-group restarts; -1 = unlimited")
    storage: StorageConfig = Field(default_factory=StorageConfig)

    @field_validator("gpus_per_worker")
    @classmethod
    def _whole_or_fraction(cls, value: float) -> float:
        # DDP wants one device per worker: a fraction shares one GPU, more than one
        # would leave GPUs idle.
        if value > 1 and value != int(value):
            raise ValueError(f"must be <= 1 or a whole number, got {value}")
        return value

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0
