"""The lite text segmenter: a 40k-parameter U-Net over colour + temporal-stability input.

Three scales: full working resolution for stroke detail, 1/2, and 1/4 with dilated
convolutions (receptive field ~120 px) so whole subtitle boxes and text lines are seen
at once. torch is imported inside the functions: importing this module costs nothing.
Weights ship as a small .npz of float32 arrays keyed by parameter name.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from clear_ray.removers.lite_features import INPUT_CHANNELS

DEFAULT_WIDTHS: tuple[int, int, int] = (8, 16, 32)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "lite_textseg.npz"


def build_text_net(widths: tuple[int, int, int] = DEFAULT_WIDTHS):
    import torch
    from torch import nn

    def conv(cin: int, cout: int, stride: int = 1, dilation: int = 1, kernel: int = 3) -> nn.Module:
        pad = dilation * (kernel // 2)
        return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding=pad, dilation=dilation),
                             nn.ReLU(inplace=True))

    c0, c1, c2 = widths

    class TextSegNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc0 = conv(INPUT_CHANNELS, c0)
            self.enc1 = nn.Sequential(conv(c0, c1, stride=2), conv(c1, c1))
            self.enc2 = nn.Sequential(conv(c1, c2, stride=2), conv(c2, c2, dilation=2),
                                      conv(c2, c2, dilation=4), conv(c2, c2, dilation=8))
            self.dec1 = nn.Sequential(conv(c2 + c1, c1, kernel=1), conv(c1, c1))
            self.dec0 = nn.Sequential(conv(c1 + c0, c0, kernel=1), conv(c0, c0))
            self.head = nn.Conv2d(c0, 1, 1)

        def forward(self, x_nchw: "torch.Tensor") -> "torch.Tensor":
            up = nn.functional.interpolate
            f0 = self.enc0(x_nchw)
            f1 = self.enc1(f0)
            f2 = self.enc2(f1)
            d1 = self.dec1(torch.cat([up(f2, size=f1.shape[-2:], mode="bilinear", align_corners=False), f1], 1))
            d0 = self.dec0(torch.cat([up(d1, size=f0.shape[-2:], mode="bilinear", align_corners=False), f0], 1))
            return self.head(d0)  # logits, (N, 1, H, W)

    return TextSegNet()


def save_weights(net, path: Path, widths: tuple[int, int, int]) -> None:
    arrays = {name: tensor.detach().cpu().numpy().astype(np.float32) for name, tensor in net.state_dict().items()}
    arrays["__widths__"] = np.asarray(widths, np.int64)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def load_text_net(path: Path = DEFAULT_WEIGHTS):
    """The segmenter in eval mode with the weights at ``path``."""
    import torch

    if not path.is_file():
        raise FileNotFoundError(f"lite segmenter weights missing: {path} (run the lite training script)")
    with np.load(path) as data:
        widths = tuple(int(v) for v in data["__widths__"])
        state = {k: torch.from_numpy(data[k]) for k in data.files if k != "__widths__"}
    net = build_text_net(widths)  # type: ignore[arg-type]
    net.load_state_dict(state)
    return net.eval()


def weights_digest(path: Path = DEFAULT_WEIGHTS) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "missing"
