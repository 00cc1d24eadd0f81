"""Score clips in parallel: one Ray task per clip, on the cluster the job uses.

A clip's scoring (decode, DIS flow both ways, SSIM per frame, Telea, perceptual networks)
is single-clip work that shares nothing with other clips, so tasks are the right grain;
results are small dicts. Tasks read the set and the job's outputs by path, so on a
multi-node cluster the benchmark directory and the work directory must be on a filesystem
every node mounts at the same path (as the removal job itself needs for local paths).
``serial=True`` runs the same function in this process, one clip after another.
"""

from __future__ import annotations

from typing import Any, Callable

from clear_ray.evaluation.clip_scoring import ClipTask, score_clip

TASK_CPUS = 1.0


def score_clips(tasks: list[ClipTask], serial: bool = False,
                on_result: Callable[[ClipTask, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """The results of ``score_clip`` in the order of ``tasks``; ``on_result`` sees each
    one as it finishes (progress lines)."""
    if serial or not tasks:
        results = []
        for task in tasks:
            results.append(score_clip(task))
            if on_result is not None:
                on_result(task, results[-1])
        return results

    import ray

    remote = ray.remote(num_cpus=TASK_CPUS, max_retries=0)(score_clip)
    pending = {remote.remote(task): index for index, task in enumerate(tasks)}
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(done[0])
        try:
            results[index] = ray.get(done[0])
        except ray.exceptions.RayTaskError as error:
            for ref in pending:  # the run fails as a serial one would: no orphan work left
                ray.cancel(ref)
            cause = error.cause if isinstance(error.cause, Exception) else RuntimeError(str(error))
            raise cause from None
        if on_result is not None:
            on_result(tasks[index], results[index])
    return results  # type: ignore[return-value]


def ensure_ray(address: str | None) -> bool:
    """Join ``address`` (or RAY_ADDRESS, or start a local cluster) unless Ray is up already.
    Returns True when this call started it (the caller then shuts it down)."""
    import logging
    import os

    import ray

    if ray.is_initialized():
        return False
    joining = address is not None or bool(os.environ.get("RAY_ADDRESS"))
    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
             **({} if joining else {"include_dashboard": False}))
    return True
