"""The Stage I occlusion-prior network, as the CLEAR paper describes it.

Two ResNet encoders read the subtitled frame; their features are fused level by level by a
Feature Pyramid Network. Two heads split the fused features into *content* features (what
the frame shows under the text; they must reconstruct the clean frame) and *subtitle*
features (where the text is; they feed the mask head), kept apart by an orthogonality
penalty. At inference only the mask head matters; Stage II distils from it.

Only the subtitled frame goes in, in training as at inference: the prior must find text
without ever seeing the clean frame.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from clear_ray.training.stage1.config import BackboneConfig, Stage1ModelConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STRIDE = 32  # the encoders' total downsampling: inputs must be multiples of it


def group_norm(channels: int) -> nn.GroupNorm:
    # ~4+ channels per group up to 32 groups (GN's default at ResNet-50 width).
    return nn.GroupNorm(math.gcd(32, max(1, channels // 4)), channels)


def _norm_factory(kind: str):
    if kind == "group":
        return group_norm
    if kind == "frozen_batch":
        from torchvision.ops import FrozenBatchNorm2d

        return FrozenBatchNorm2d
    return nn.BatchNorm2d


class ResNetEncoder(nn.Module):
    """torchvision's ResNet layout (same module names, so ResNet-50 ImageNet weights load) with
    a configurable block, depth and width. Returns the four stage outputs (strides 4..32)."""

    def __init__(self, config: BackboneConfig):
        super().__init__()
        from torchvision.models.resnet import BasicBlock, Bottleneck

        block = Bottleneck if config.block == "bottleneck" else BasicBlock
        norm = _norm_factory(config.norm)
        width = config.width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._inplanes = width
        self.layer1 = self._make_layer(block, width, config.layers[0], 1, norm)
        self.layer2 = self._make_layer(block, width * 2, config.layers[1], 2, norm)
        self.layer3 = self._make_layer(block, width * 4, config.layers[2], 2, norm)
        self.layer4 = self._make_layer(block, width * 8, config.layers[3], 2, norm)
        self.channels = [width * m * block.expansion for m in (1, 2, 4, 8)]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes: int, blocks: int, stride: int, norm) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self._inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                norm(planes * block.expansion),
            )
        layers = [block(self._inplanes, planes, stride, downsample, norm_layer=norm)]
        self._inplanes = planes * block.expansion
        layers += [block(self._inplanes, planes, norm_layer=norm) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]

    def load_imagenet(self, path) -> None:
        """Load a local torchvision ResNet-50 state dict (the classifier is dropped)."""
        state = _read_state_dict(path)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = self.load_state_dict(state, strict=False)
        # BatchNorm's step counter is the only thing a torchvision file may lack or add.
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        unexpected = [k for k in unexpected if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(f"{path} is not a ResNet-50 state dict (missing {missing[:3]}, unexpected {unexpected[:3]})")


def _read_state_dict(path) -> dict[str, torch.Tensor]:
    path = str(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), group_norm(cout), nn.ReLU(inplace=True))


def _upsampling_decoder(cin: int, cout: int) -> nn.Sequential:
    """Stride-4 features -> full resolution: two learned x2 upsamplings, then a 1x1 projection."""
    mid, low = max(cin // 2, 8), max(cin // 4, 8)
    return nn.Sequential(
        _conv_block(cin, cin),
        nn.ConvTranspose2d(cin, mid, 2, stride=2), group_norm(mid), nn.ReLU(inplace=True),
        nn.ConvTranspose2d(mid, low, 2, stride=2), group_norm(low), nn.ReLU(inplace=True),
        nn.Conv2d(low, cout, 1),
    )


class OcclusionPrior(nn.Module):
    """Subtitled frames (B, 3, H, W) in [0, 1] -> mask logits, clean-frame reconstruction and
    the content/subtitle features. H and W must be multiples of 32."""

    def __init__(self, config: Stage1ModelConfig):
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork

        self.config = config
        self.content_encoder = ResNetEncoder(config.backbone)
        self.subtitle_encoder = ResNetEncoder(config.backbone)
        fused = [2 * c for c in self.content_encoder.channels]
        self.fpn = FeaturePyramidNetwork(fused, config.fpn_channels, norm_layer=group_norm)
        self.content_head = nn.Sequential(_conv_block(config.fpn_channels, config.feature_channels),
                                          nn.Conv2d(config.feature_channels, config.feature_channels, 3, padding=1))
        self.subtitle_head = nn.Sequential(_conv_block(config.fpn_channels, config.feature_channels),
                                           nn.Conv2d(config.feature_channels, config.feature_channels, 3, padding=1))
        self.mask_head = _upsampling_decoder(config.feature_channels, 1)
        self.reconstruction_head = _upsampling_decoder(config.feature_channels, 3)
        # Start the mask near "no text" (text covers ~1-5 % of a frame), as detectors do,
        # so early steps are not spent unlearning a 50 % prior.
        nn.init.constant_(self.mask_head[-1].bias, -4.0)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if config.backbone.imagenet_weights is not None:
            self.content_encoder.load_imagenet(config.backbone.imagenet_weights)
            self.subtitle_encoder.load_imagenet(config.backbone.imagenet_weights)

    def forward(self, subtitled_bchw: torch.Tensor) -> dict[str, torch.Tensor]:
        _, _, height, width = subtitled_bchw.shape
        if height % STRIDE or width % STRIDE:
            raise ValueError(f"frame size {height}x{width} must be a multiple of {STRIDE}")
        x = (subtitled_bchw - self.mean) / self.std
        levels = [torch.cat(pair, dim=1) for pair in zip(self.content_encoder(x), self.subtitle_encoder(x))]
        pyramid = self.fpn(OrderedDict((f"p{i + 2}", level) for i, level in enumerate(levels)))
        # Every level at stride 4, summed: small text lives in p2, large captions in p4/p5.
        finest = pyramid["p2"]
        for level in ("p3", "p4", "p5"):
            finest = finest + F.interpolate(pyramid[level], size=finest.shape[-2:], mode="bilinear",
                                            align_corners=False)
        content = self.content_head(finest)
        subtitle = self.subtitle_head(finest)
        return {
            "mask_logits": self.mask_head(subtitle),
            "reconstruction": torch.tanh(self.reconstruction_head(content)),
            "content": content,
            "subtitle": subtitle,
        }

    @torch.no_grad()
    def predict_probabilities(self, subtitled_bchw: torch.Tensor) -> torch.Tensor:
        """Text probability per pixel, (B, H, W)."""
        return torch.sigmoid(self(subtitled_bchw)["mask_logits"][:, 0].float())


def resize_to_multiple(height: int, width: int) -> tuple[int, int]:
    """The nearest size the network accepts."""
    return max(STRIDE, round(height / STRIDE) * STRIDE), max(STRIDE, round(width / STRIDE) * STRIDE)


def interpolate_frames(bchw: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if bchw.shape[-2:] == (height, width):
        return bchw
    return F.interpolate(bchw, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
