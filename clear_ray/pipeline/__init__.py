"""The removal job on Ray: see docs/ARCHITECTURE.md for the data flow."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clear_ray.pipeline.job import JobSummary


def run_remove_job(config) -> "JobSummary":
    """Run `clear-ray remove` with a validated RemoveJobConfig; returns the run's summary."""
    from clear_ray.pipeline.job import run_remove_job as run

    return run(config)
