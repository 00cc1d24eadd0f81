"""LPIPS from local weights only: nothing is downloaded.

LPIPS (Zhang et al., CVPR 2018, v0.1, AlexNet) has two parts: the small learned linear
heads, which ship inside the ``lpips`` wheel, and the ImageNet AlexNet backbone, which
torchvision would download. The user points ``--lpips-weights`` at a local copy of
torchvision's AlexNet state dict (``alexnet-owt-7be5be79.pth``); without it the LPIPS
column reads "n/a". DISTS (``dists.py``) and VFID (``vfid.py``) follow the same rule: local
files or "n/a", never a download. ``PerceptualConfig`` names the files; its fingerprint
enters the reference-row cache key, since the input and oracle rows carry these columns.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class WeightsError(ValueError):
    """A weight file is missing, unreadable or not the expected network."""


class PerceptualConfig(BaseModel):
    """Local weight files of the learned metrics; a metric without its files reads n/a."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    lpips_weights: Path | None = Field(None, description="torchvision AlexNet state dict (LPIPS v0.1 backbone)")
    dists_weights: Path | None = Field(None, description="DISTS alpha/beta file (DISTS_pytorch weights.pt)")
    vgg16_weights: Path | None = Field(None, description="torchvision VGG16 state dict (DISTS backbone)")
    vfid_weights: Path | None = Field(None, description="video network for VFID: TorchScript, or an "
                                                        "InceptionI3d (pytorch-i3d) state dict")
    frame_stride: int = Field(1, ge=1, le=1000, description="LPIPS and DISTS on every Nth frame")

    @model_validator(mode="after")
    def _check(self) -> "PerceptualConfig":
        if (self.dists_weights is None) != (self.vgg16_weights is None):
            raise ValueError("DISTS needs both --dists-weights (alpha/beta) and --vgg16-weights")
        for name in ("lpips_weights", "dists_weights", "vgg16_weights", "vfid_weights"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"--{name.replace('_', '-')}: {path} is not a file")
        return self

    def notes(self) -> list[str]:
        missing = [metric for metric, given in (("LPIPS", self.lpips_weights), ("DISTS", self.dists_weights),
                                                ("VFID", self.vfid_weights)) if given is None]
        return [f"{', '.join(missing)} not computed (no local weights given; nothing is downloaded)"] if missing else []

    def fingerprint(self) -> dict:
        """What decides these columns' values: each file's name, size and modification time."""
        out: dict = {"frame_stride": self.frame_stride}
        for name in ("lpips_weights", "dists_weights", "vgg16_weights", "vfid_weights"):
            path = getattr(self, name)
            if path is not None:
                stat = Path(path).stat()
                out[name] = [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]
        return out


class Scorers:
    """The loaded networks (inside the worker that scores a clip)."""

    def __init__(self, config: PerceptualConfig):
        self.config = config
        self.lpips = LpipsScorer(config.lpips_weights) if config.lpips_weights else None
        self.dists = None
        if config.dists_weights and config.vgg16_weights:
            from clear_ray.evaluation.dists import DistsScorer

            self.dists = DistsScorer(config.dists_weights, config.vgg16_weights)
        self.vfid = None
        if config.vfid_weights:
            from clear_ray.evaluation.vfid import VideoFeatures

            self.vfid = VideoFeatures(config.vfid_weights)

    def frame_scores(self, output_thwc_u8: np.ndarray, reference_thwc_u8: np.ndarray) -> dict[str, float]:
        stride = self.config.frame_stride
        scores = {}
        if self.lpips is not None:
            scores["lpips"] = self.lpips.score(output_thwc_u8[::stride], reference_thwc_u8[::stride])
        if self.dists is not None:
            scores["dists"] = self.dists.score(output_thwc_u8, reference_thwc_u8, stride=stride)
        return scores


def load_state_dict(path: str | Path, what: str) -> dict:
    """A torch state dict from a local file (tensors only: ``weights_only``), or WeightsError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} weights {path} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise WeightsError(f"cannot read {path} as a torch state dict: {reason[:200]}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


class LpipsScorer:
    def __init__(self, backbone_weights: str | Path):
        try:
            import lpips
            import torch
        except ImportError as error:
            raise WeightsError(f"LPIPS needs the lpips package ({error.name} missing): pip install lpips") from None
        path = Path(backbone_weights)
        state = load_state_dict(path, "LPIPS backbone")
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
