"""DISTS (Ding et al., TPAMI 2020) from two local files: nothing is downloaded.

The published definition (the authors' ``DISTS_pytorch``): torchvision's VGG16 ``features``
with every max-pool replaced by an L2 pool (a 3x3 Hann window, stride 2), applied to the
image in [0, 1] normalised with the ImageNet mean/std; six feature maps, the raw image and
relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (3 + 64 + 128 + 256 + 512 + 512 = 1475 channels).
Per channel, a texture term from the global means and a structure term from the global
(co)variances, weighted by the learned ``alpha``/``beta`` (normalised by their sum)::

    DISTS = 1 - sum_k sum_c [ alpha_kc (2 mx my + c1)/(mx^2 + my^2 + c1)
                             + beta_kc (2 cov + c2)/(vx + vy + c2) ],   c1 = c2 = 1e-6

The user passes torchvision's VGG16 state dict (``vgg16-397923af.pth``) and the DISTS weight
file (``weights.pt`` of DISTS_pytorch: ``{"alpha": (1,1475,1,1), "beta": (1,1475,1,1)}``).
As the authors' ``prepare_image`` does, a frame whose short side exceeds 256 px is resized
to 256 first. A clip's DISTS is the mean over its frames (every ``stride``-th frame).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clear_ray.evaluation.perceptual import WeightsError, load_state_dict

# torchvision VGG16 ``features[0:30]``: convs at these indices, ReLUs between, and the
# max-pools at 4, 9, 16, 23, which DISTS replaces by L2 pools. Stage k ends with relu*_*.
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
POOL_INDICES = (4, 9, 16, 23)
STAGE_BOUNDS = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SHORT_SIDE = 256
C1 = C2 = 1e-6


def build_dists_network(vgg16_state: dict, alpha, beta):
    """The DISTS module: VGG16 convs copied from ``vgg16_state`` (torchvision names)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class L2Pool(nn.Module):
        def __init__(self, channels: int):
            super().__init__()
            hann = torch.tensor(np.hanning(5)[1:-1], dtype=torch.float32)  # [0.5, 1, 0.5]
            window = hann[:, None] * hann[None, :]
            self.register_buffer("window", (window / window.sum())[None, None].repeat(channels, 1, 1, 1))

        def forward(self, x):
            out = F.conv2d(x * x, self.window, stride=2, padding=1, groups=x.shape[1])
            return (out + 1e-12).sqrt()

    class Dists(nn.Module):
        def __init__(self):
            super().__init__()
            layers: list[nn.Module] = []
            channels = 3
            self.channels = [3]  # of each feature map DISTS compares: 1475 for VGG16
            for index in range(30):
                if index in POOL_INDICES:
                    layers.append(L2Pool(channels))
                elif index in CONV_INDICES:
                    weight, bias = vgg16_state[f"features.{index}.weight"], vgg16_state[f"features.{index}.bias"]
                    if tuple(weight.shape[1:]) != (channels, 3, 3):
                        raise WeightsError(f"VGG16 features.{index}.weight has shape {tuple(weight.shape)}")
                    conv = nn.Conv2d(channels, weight.shape[0], 3, padding=1)
                    with torch.no_grad():
                        conv.weight.copy_(weight)
                        conv.bias.copy_(bias)
                    layers.append(conv)
                    channels = weight.shape[0]
                    if index + 2 in POOL_INDICES or index == CONV_INDICES[-1]:
                        self.channels.append(channels)
                else:
                    layers.append(nn.ReLU())
            self.stages = nn.ModuleList(nn.Sequential(*layers[a:b]) for a, b in STAGE_BOUNDS)
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
            if alpha.numel() != sum(self.channels) or beta.numel() != sum(self.channels):
                raise WeightsError(f"DISTS alpha/beta hold {alpha.numel()}/{beta.numel()} values; this VGG16 "
                                   f"needs {sum(self.channels)}")
            self.register_buffer("alpha", alpha.reshape(1, -1, 1, 1).float())
            self.register_buffer("beta", beta.reshape(1, -1, 1, 1).float())

        def features(self, x):
            """[the image, relu1_2, relu2_2, relu3_3, relu4_3, relu5_3]; x in [0, 1]."""
            feats = [x]
            h = (x - self.mean) / self.std
            for stage in self.stages:
                h = stage(h)
                feats.append(h)
            return feats

        def forward(self, x, y):
            """DISTS of each image pair of two (N, 3, H, W) batches in [0, 1]."""
            total = self.alpha.sum() + self.beta.sum()
            alphas = torch.split(self.alpha / total, self.channels, dim=1)
            betas = torch.split(self.beta / total, self.channels, dim=1)
            texture = structure = 0.0
            for fx, fy, a, b in zip(self.features(x), self.features(y), alphas, betas):
                mx, my = fx.mean([2, 3], keepdim=True), fy.mean([2, 3], keepdim=True)
                texture = texture + (a * (2 * mx * my + C1) / (mx ** 2 + my ** 2 + C1)).sum(1, keepdim=True)
                vx = ((fx - mx) ** 2).mean([2, 3], keepdim=True)
                vy = ((fy - my) ** 2).mean([2, 3], keepdim=True)
                cov = (fx * fy).mean([2, 3], keepdim=True) - mx * my
                structure = structure + (b * (2 * cov + C2) / (vx + vy + C2)).sum(1, keepdim=True)
            return 1 - (texture + structure).reshape(-1)

    return Dists().eval()


class DistsScorer:
    def __init__(self, dists_weights: str | Path, vgg16_weights: str | Path):
        import torch

        self._torch = torch
        vgg = load_state_dict(vgg16_weights, "VGG16")
        for index in CONV_INDICES:
            if f"features.{index}.weight" not in vgg or f"features.{index}.bias" not in vgg:
                raise WeightsError(f"{vgg16_weights} is not a torchvision VGG16 state dict "
                                   f"(no 'features.{index}.weight')")
        weights = load_state_dict(dists_weights, "DISTS alpha/beta")
        alpha, beta = weights.get("alpha"), weights.get("beta")
        if alpha is None or beta is None:
            raise WeightsError(f"{dists_weights} is not a DISTS weight file (no 'alpha' and 'beta')")
        self._model = build_dists_network(vgg, alpha, beta)

    def score(self, output_thwc_u8: np.ndarray, reference_thwc_u8: np.ndarray, stride: int = 1,
              batch: int = 4) -> float:
        """Mean DISTS over every ``stride``-th frame (0 = identical; lower is better)."""
        torch = self._torch
        indices = np.arange(0, len(output_thwc_u8), stride)
        values = []
        with torch.no_grad():
            for start in range(0, len(indices), batch):
                pick = indices[start:start + batch]
                values.append(self._model(prepare(torch, output_thwc_u8[pick]), prepare(torch, reference_thwc_u8[pick])))
        return float(torch.cat(values).mean())


def prepare(torch, frames_thwc_u8: np.ndarray):
    """(N, 3, H, W) float in [0, 1], short side at most 256 (bilinear, antialiased)."""
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames_thwc_u8)).permute(0, 3, 1, 2).float() / 255.0
    height, width = x.shape[2:]
    if min(height, width) > SHORT_SIDE:
        scale = SHORT_SIDE / min(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x
