"""Evaluation: the benchmark set and its metrics (the burn-in generator is ``clear_ray.synth``).

Modules (import the one you need; none imports cv2, av or torch at module level):

- ``benchset``: ``clear-ray bench make`` (reproducible set + manifest.json).
- ``metrics``: PSNR/SSIM by region, warping error, TC, flow statistics, mask precision/recall.
- ``bench``: ``clear-ray bench run`` (input and oracle reference rows + the backend).
"""
