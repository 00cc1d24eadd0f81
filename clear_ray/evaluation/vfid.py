"""VFID: the Fréchet distance between the feature statistics of two sets of clips, as the
video inpainting papers CLEAR compares against report it (FGT, ProPainter).

Per clip, one feature vector from a video network: the user's local file, either
- a TorchScript module mapping (N, 3, T, H, W) float RGB in [0, 1] to (N, D) features, or
- a state dict of pytorch-i3d's ``InceptionI3d`` (``rgb_imagenet.pt``; ``i3d.py`` builds
  the network), whose feature is Mixed_5c averaged over time and space (D = 1024).
As in ProPainter's evaluation, the whole clip goes in at once, RGB scaled to [0, 1]; frames
with a short side over ``SHORT_SIDE`` are resized down to it first (ProPainter scores DAVIS
at 432x240; full 720p through I3D would cost a minute per clip on CPU). Then, over the
clips of a group, VFID = Fréchet(mean/covariance of the clean clips' features, those of
the method's outputs) (``frechet.py``; covariance with ddof 1, so a group needs 2 clips).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from clear_ray.evaluation.perceptual import WeightsError, load_state_dict

SHORT_SIDE = 240


class VideoFeatures:
    def __init__(self, weights: str | Path):
        import torch

        self._torch = torch
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"VFID network {path} is not a file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
                self._model = torch.jit.load(str(path), map_location="cpu").eval()
            self.kind = "torchscript"
        except Exception:  # not TorchScript: an I3D state dict, or nothing we can use
            self._model = _load_i3d(path)
            self.kind = "i3d"

    def __call__(self, frames_thwc_u8: np.ndarray) -> np.ndarray:
        """One clip's feature vector (float64, shape (D,))."""
        import torch.nn.functional as F

        torch = self._torch
        video = torch.from_numpy(np.ascontiguousarray(frames_thwc_u8)).permute(3, 0, 1, 2).float() / 255.0
        height, width = video.shape[2:]
        if min(height, width) > SHORT_SIDE:
            scale = SHORT_SIDE / min(height, width)
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            video = F.interpolate(video.transpose(0, 1), size=size, mode="bilinear", antialias=True,
                                  align_corners=False).transpose(0, 1)
        with torch.no_grad():
            features = self._model(video[None])
        return features.reshape(-1).double().numpy()


def _load_i3d(path: Path):
    from clear_ray.evaluation.i3d import build_i3d

    state = load_state_dict(path, "VFID")
    logits = state.get("logits.conv3d.weight")
    if logits is None or "Mixed_5c.b0.conv3d.weight" not in state:
        raise WeightsError(f"{path} is neither a TorchScript module nor a pytorch-i3d InceptionI3d state dict")
    model = build_i3d(num_classes=int(logits.shape[0]))
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise WeightsError(f"{path}: I3D weights of the wrong shape ({str(error).splitlines()[0][:200]})") from None
    return model.eval()


def vfid(real_features_nd: np.ndarray, fake_features_nd: np.ndarray) -> float:
    from clear_ray.evaluation.frechet import frechet_distance_of_sets

    return frechet_distance_of_sets(np.asarray(real_features_nd), np.asarray(fake_features_nd))
