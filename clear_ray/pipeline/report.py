"""What a job prints: one line per finished video, and a summary table at the end."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Sequence

from clear_ray.manifest import ManifestRow


class Reporter:
    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stdout

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def starting(self, to_process: int, total: int, backend: str) -> None:
        if not self.quiet:
            self._print(f"clear-ray: processing {to_process} of {total} inputs with backend {backend}")

    def video_finished(self, row: ManifestRow, *, done_so_far: int, total: int) -> None:
        # Failures always print (cron mails them); the rest only when not quiet.
        if row.status == "failed":
            self._print(f"[{done_so_far}/{total}] FAILED {row.rel_path}: {row.error}")
        elif not self.quiet and row.status == "done":
            frames = f"{row.frames} frames, " if row.frames else ""
            self._print(f"[{done_so_far}/{total}] done {row.rel_path} -> {row.output_uri} "
                        f"({frames}{row.seconds_total or 0:.1f} s)")

    def summary(self, rows: Sequence[ManifestRow], *, backend: str, seconds: float,
                ray_start_s: float | None = None) -> None:
        self._print(summary_table(rows, backend=backend, seconds=seconds, ray_start_s=ray_start_s))


def summary_table(rows: Sequence[ManifestRow], *, backend: str, seconds: float,
                  ray_start_s: float | None = None) -> str:
    counts = Counter(row.status for row in rows)
    start = f", Ray start-up {ray_start_s:.1f} s" if ray_start_s is not None else ""
    lines = [f"clear-ray remove: {len(rows)} inputs in {seconds:.1f} s (backend {backend}{start})",
             f"  {'status':<12}{'count':>7}"]
    for status in ("done", "skipped", "failed", "quarantined"):
        lines.append(f"  {status:<12}{counts.get(status, 0):>7}")
    problems = [row for row in rows if row.status in ("failed", "quarantined")]
    if problems:
        width = max(len(row.rel_path) for row in problems)
        lines.append("  inputs not processed:")
        for row in problems:
            lines.append(f"    {row.status:<12}{row.rel_path:<{width}}  {row.error}")
    return "\n".join(lines)
