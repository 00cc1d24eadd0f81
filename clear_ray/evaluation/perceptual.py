"""LPIPS from local weights only: nothing is downloaded.

LPIPS (Zhang et al., CVPR 2018, v0.1, AlexNet) has two parts: the small learned linear
heads, which ship inside the ``lpips`` wheel, and the ImageNet AlexNet backbone, which
torchvision would download. The user points ``--lpips-weights`` at a local copy of
torchvision's AlexNet state dict (``alexnet-owt-7be5be79.pth``); without it the LPIPS
column reads "n/a". DISTS and VFID are not computed in this version.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


class WeightsError(ValueError):
    """A weight file is missing, unreadable or not the expected network."""


class LpipsScorer:
    def __init__(self, backbone_weights: str | Path):
        try:
            import lpips
            import torch
        except ImportError as error:
            raise WeightsError(f"LPIPS needs the lpips package ({error.name} missing): pip install lpips") from None
        path = Path(backbone_weights)
        if not path.is_file():
            raise WeightsError(f"LPIPS backbone weights {path} is not a file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise WeightsError(f"cannot read {path} as a torch state dict: {reason[:200]}") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        # pnet_rand: do not let torchvision fetch ImageNet weights; ours come next.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # lpips uses torchvision's old `pretrained=`
            self._model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        backbone = {}
        for name in self._model.net.state_dict():
            _, index, parameter = name.split(".")  # "slice2.3.weight" <- "features.3.weight"
            source = f"features.{index}.{parameter}"
            if not isinstance(state, dict) or source not in state:
                raise WeightsError(f"{path} is not a torchvision AlexNet state dict (no {source!r})")
            backbone[name] = state[source]
        try:
            self._model.net.load_state_dict(backbone)
        except RuntimeError as error:
            raise WeightsError(f"{path}: AlexNet weights of the wrong shape ({str(error).splitlines()[0]})") from None
        self._model.eval()
        self._torch = torch

    def score(self, output_thwc_u8: np.ndarray, reference_thwc_u8: np.ndarray, batch: int = 4) -> float:
        """Mean LPIPS distance over frames (0 = identical; lower is better)."""
        torch = self._torch
        distances = []
        with torch.no_grad():
            for start in range(0, len(output_thwc_u8), batch):
                a = _to_tensor(torch, output_thwc_u8[start:start + batch])
                b = _to_tensor(torch, reference_thwc_u8[start:start + batch])
                distances.append(self._model(a, b).reshape(-1))
        return float(torch.cat(distances).mean())


def _to_tensor(torch, frames_thwc_u8: np.ndarray):
    # LPIPS takes NCHW in [-1, 1].
    return torch.from_numpy(np.ascontiguousarray(frames_thwc_u8)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
