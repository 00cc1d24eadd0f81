"""The verdict table of `bench run`: the backend against the true-mask Telea row, per language.

Per language (and "all" texted clips), from the per-clip rows:
- PSNR inside the text: the backend's mean, the baseline's, their difference, and how many
  clips are at or above the baseline (the goal: every clip, so every language);
- full-frame PSNR: backend minus baseline (goal: >= -0.5 dB);
- TWE: the backend's and the input's (goal: no worse than doing nothing), and how many
  clips meet it.
Text-free clips are listed one by one: "unchanged" when the remover marked no pixel (its
own mask, recovered by the bench), else the share it marked and the full-frame PSNR; a
backend without a recoverable mask (GPU) is judged by PSNR only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from clear_ray.evaluation.clip_scoring import INPUT_ROW, ORACLE_ROW

FULL_FRAME_TOLERANCE_DB = 0.5


def _value(row: dict[str, Any] | None, key: str) -> float:
    value = None if row is None else row.get(key)
    return float(value) if isinstance(value, (int, float)) and value is not None else math.nan


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def compare(clip_rows: list[dict[str, Any]], backend: str) -> dict[str, Any]:
    """{"languages": [per-language dicts], "text_free": [per-clip dicts]}."""
    by_clip: dict[str, dict[str, dict[str, Any]]] = {}
    for row in clip_rows:
        by_clip.setdefault(row["clip"], {})[row["method"]] = row
    texted = {clip: rows for clip, rows in by_clip.items()
              if rows.get(INPUT_ROW, {}).get("language", "none") != "none"}
    languages = list(dict.fromkeys(rows[INPUT_ROW]["language"] for rows in texted.values()))
    out: dict[str, Any] = {"languages": [], "text_free": []}
    for language in [*languages, "all"]:
        group = [rows for rows in texted.values() if language in ("all", rows[INPUT_ROW]["language"])]
        per_clip = []
        for rows in group:
            mine, oracle, nothing = rows.get(backend), rows.get(ORACLE_ROW), rows.get(INPUT_ROW)
            scored = mine is not None and mine.get("status") == "done"
            per_clip.append({
                "scored": scored,
                "text": _value(mine, "psnr_text"), "text_oracle": _value(oracle, "psnr_text"),
                "full_delta": _value(mine, "psnr_full") - _value(oracle, "psnr_full"),
                "twe": _value(mine, "twe"), "twe_input": _value(nothing, "twe"),
            })
        scored = [c for c in per_clip if c["scored"]]
        text, text_oracle = _mean([c["text"] for c in scored]), _mean([c["text_oracle"] for c in per_clip])
        out["languages"].append({
            "language": language, "clips": len(per_clip), "scored": len(scored),
            "psnr_text": text, "psnr_text_oracle": text_oracle, "psnr_text_delta": text - text_oracle,
            "clips_at_or_above_oracle": sum(c["text"] >= c["text_oracle"] for c in scored),
            "psnr_full_delta": _mean([c["full_delta"] for c in scored]),
            "twe": _mean([c["twe"] for c in scored]), "twe_input": _mean([c["twe_input"] for c in per_clip]),
            "clips_twe_at_most_input": sum(c["twe"] <= c["twe_input"] for c in scored),
        })
    for clip, rows in by_clip.items():
        if clip in texted:
            continue
        mine = rows.get(backend)
        scored = mine is not None and mine.get("status") == "done"
        marked = _value(mine, "mask_fpr")
        verdict = ("not scored" if not scored else "unknown (no mask)" if math.isnan(marked)
                   else "unchanged" if marked == 0.0 else "changed")
        out["text_free"].append({"clip": clip, "verdict": verdict, "marked_share": marked,
                                 "psnr_full": _value(mine, "psnr_full")})
    return out


def comparison_table(clip_rows: list[dict[str, Any]], backend: str) -> str:
    result = compare(clip_rows, backend)
    headers = ["lang", "clips", "PSNRtxt", "oracle", "delta", ">=oracle", "dFull", "TWE", "TWEin", "<=input"]
    body = []
    for g in result["languages"]:
        body.append([g["language"], f"{g['scored']}/{g['clips']}", _fmt(g["psnr_text"]), _fmt(g["psnr_text_oracle"]),
                     _fmt(g["psnr_text_delta"], "{:+.2f}"), f"{g['clips_at_or_above_oracle']}/{g['clips']}",
                     _fmt(g["psnr_full_delta"], "{:+.2f}"), _fmt(g["twe"], "{:.3f}"), _fmt(g["twe_input"], "{:.3f}"),
                     f"{g['clips_twe_at_most_input']}/{g['clips']}"])
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *body)]
    lines = [f"{backend} vs {ORACLE_ROW} (true mask), per language:"]
    lines += ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
              for line in [headers, *body]]
    lines.append(f"delta = {backend} - oracle inside the text; dFull = full-frame PSNR {backend} - oracle "
                 f"(goal >= -{FULL_FRAME_TOLERANCE_DB} dB); TWE vs the input's (x1e-3)")
    for clip in result["text_free"]:
        detail = "" if clip["verdict"] in ("unchanged", "not scored") else (
            f" (marked {clip['marked_share']:.5f} of the pixels, " if not math.isnan(clip["marked_share"]) else " (")
        if detail:
            detail += f"full-frame PSNR {_fmt(clip['psnr_full'])} dB)"
        lines.append(f"text-free {clip['clip']}: {clip['verdict']}{detail}")
    return "\n".join(lines)


def _fmt(value: float, pattern: str = "{:.2f}") -> str:
    return "n/a" if value is None or math.isnan(value) else pattern.format(value)
