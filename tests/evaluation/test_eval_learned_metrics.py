"""Fréchet distance, DISTS and VFID on known values. Every weight file is random and made
here in tmp: nothing is downloaded, nothing is shipped."""

from __future__ import annotations

import math
import shutil
import sys

import numpy as np
import pytest

from clear_ray.evaluation.frechet import feature_statistics, frechet_distance, frechet_distance_of_sets

# A tiny VGG16 "features" stack: the real layer indices, a few channels each.
TINY_VGG_CHANNELS = {0: 4, 2: 4, 5: 6, 7: 6, 10: 8, 12: 8, 14: 8, 17: 8, 19: 8, 21: 8, 24: 8, 26: 8, 28: 8}


def random_orthogonal(rng, n):
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def test_frechet_distance_matches_closed_forms():
    rng = np.random.default_rng(0)
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2.
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0, abs=1e-12)
    # Covariances sharing eigenvectors: |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2.
    q = random_orthogonal(rng, 5)
    a, b = rng.uniform(0.1, 4.0, 5), rng.uniform(0.1, 4.0, 5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T) == pytest.approx(expected, rel=1e-10)
    # Singular (rank 2 in 5-D, as with fewer clips than features): still exact.
    a[2:], b[2:] = 0.0, 0.0
    expected = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T) == pytest.approx(expected, rel=1e-10)
    # Two covariances that do not commute, against scipy's matrix square root.
    from scipy.linalg import sqrtm

    x, y = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = x @ x.T + np.eye(5), y @ y.T + np.eye(5)
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(sqrtm(s1 @ s2))))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_sets():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(12, 32))  # fewer vectors than dimensions, like 12 clips of I3D features
    assert frechet_distance_of_sets(real, real.copy()) == pytest.approx(0.0, abs=1e-9)
    shift = rng.normal(size=32)
    # A constant shift moves only the mean: exactly |shift|^2.
    assert frechet_distance_of_sets(real, real + shift) == pytest.approx(float(shift @ shift), rel=1e-9)
    # Scaling every vector about the mean by k scales the covariance by k^2: (k-1)^2 Tr(S).
    mean, sigma = feature_statistics(real)
    scaled = mean + 3.0 * (real - mean)
    assert frechet_distance_of_sets(real, scaled) == pytest.approx(4.0 * float(np.trace(sigma)), rel=1e-9)
    assert math.isnan(frechet_distance_of_sets(real[:1], real[:1]))


@pytest.fixture(scope="module")
def tiny_dists_files(tmp_path_factory):
    """A tiny random VGG16-layout state dict and DISTS alpha/beta sized for it."""
    import torch

    directory = tmp_path_factory.mktemp("dists")
    generator = torch.Generator().manual_seed(0)
    state, channels = {}, 3
    for index, out in TINY_VGG_CHANNELS.items():
        state[f"features.{index}.weight"] = torch.randn(out, channels, 3, 3, generator=generator) * 0.3
        state[f"features.{index}.bias"] = torch.randn(out, generator=generator) * 0.1
        channels = out
    size = 3 + 4 + 6 + 8 + 8 + 8
    torch.save(state, directory / "vgg.pth")
    torch.save({"alpha": torch.rand(1, size, 1, 1, generator=generator),
                "beta": torch.rand(1, size, 1, 1, generator=generator)}, directory / "dists.pt")
    return directory / "dists.pt", directory / "vgg.pth"


def hand_dists(x_chw: np.ndarray, y_chw: np.ndarray, vgg: dict, alpha: np.ndarray, beta: np.ndarray) -> float:
    """DISTS written out in float64 from the paper's formulas (numpy + explicit loops)."""
    from scipy.signal import correlate2d

    mean, std = np.array([0.485, 0.456, 0.406])[:, None, None], np.array([0.229, 0.224, 0.225])[:, None, None]

    def conv(h, weight, bias):
        padded = np.pad(h, ((0, 0), (1, 1), (1, 1)))
        return np.stack([sum(correlate2d(padded[c], weight[o, c], mode="valid") for c in range(h.shape[0])) + bias[o]
                         for o in range(weight.shape[0])])

    def l2pool(h):
        g = np.outer([0.5, 1.0, 0.5], [0.5, 1.0, 0.5])
        g /= g.sum()
        padded = np.pad(h * h, ((0, 0), (1, 1), (1, 1)))
        out = np.stack([correlate2d(p, g, mode="valid")[::2, ::2] for p in padded])
        return np.sqrt(out + 1e-12)

    def features(image):
        feats, h = [image], (image - mean) / std
        for index in range(30):
            if index in (4, 9, 16, 23):
                h = l2pool(h)
            elif index in TINY_VGG_CHANNELS:
                h = conv(h, vgg[f"features.{index}.weight"], vgg[f"features.{index}.bias"])
            else:
                h = np.maximum(h, 0.0)
            if index in (3, 8, 15, 22, 29):
                feats.append(h)
        return feats

    total = alpha.sum() + beta.sum()
    score, start = 0.0, 0
    for fx, fy in zip(features(x_chw), features(y_chw)):
        a, b = alpha[start:start + len(fx)] / total, beta[start:start + len(fx)] / total
        start += len(fx)
        for c in range(len(fx)):
            mx, my = fx[c].mean(), fy[c].mean()
            vx, vy = ((fx[c] - mx) ** 2).mean(), ((fy[c] - my) ** 2).mean()
            cov = ((fx[c] - mx) * (fy[c] - my)).mean()
            score += a[c] * (2 * mx * my + 1e-6) / (mx ** 2 + my ** 2 + 1e-6)
            score += b[c] * (2 * cov + 1e-6) / (vx + vy + 1e-6)
    return 1.0 - score


def test_dists_is_zero_for_identical_images_and_matches_a_hand_computation(tiny_dists_files):
    import torch

    from clear_ray.evaluation.dists import DistsScorer

    scorer = DistsScorer(*tiny_dists_files)
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (2, 32, 40, 3), dtype=np.uint8)
    other = np.clip(frames.astype(int) + rng.integers(-40, 40, frames.shape), 0, 255).astype(np.uint8)
    assert scorer.score(frames, frames) == pytest.approx(0.0, abs=1e-6)
    vgg = {k: v.double().numpy() for k, v in torch.load(tiny_dists_files[1], weights_only=True).items()}
    weights = torch.load(tiny_dists_files[0], weights_only=True)
    alpha, beta = weights["alpha"].double().numpy().ravel(), weights["beta"].double().numpy().ravel()
    expected = np.mean([hand_dists(f.transpose(2, 0, 1) / 255.0, o.transpose(2, 0, 1) / 255.0, vgg, alpha, beta)
                        for f, o in zip(frames, other)])
    assert expected > 0.001
    assert scorer.score(frames, other) == pytest.approx(expected, rel=1e-4)
    assert scorer.score(frames, other, stride=2) == pytest.approx(
        hand_dists(frames[0].transpose(2, 0, 1) / 255.0, other[0].transpose(2, 0, 1) / 255.0, vgg, alpha, beta),
        rel=1e-4)


def test_dists_rejects_files_that_are_not_its_weights(tiny_dists_files, tmp_path):
    import torch

    from clear_ray.evaluation.dists import DistsScorer
    from clear_ray.evaluation.perceptual import WeightsError

    dists, vgg = tiny_dists_files
    with pytest.raises(WeightsError, match="not a torchvision VGG16"):
        DistsScorer(dists, dists)
    with pytest.raises(WeightsError, match="not a DISTS weight file"):
        DistsScorer(vgg, vgg)
    short = tmp_path / "short.pt"
    torch.save({"alpha": torch.rand(1, 5, 1, 1), "beta": torch.rand(1, 5, 1, 1)}, short)
    with pytest.raises(WeightsError, match="needs 37"):
        DistsScorer(short, vgg)


@pytest.fixture(scope="module")
def tiny_video_network(tmp_path_factory):
    """A TorchScript video network: Conv3d + ReLU + global mean -> 6 features."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv3d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten())
    path = tmp_path_factory.mktemp("vfid") / "net.pt"
    torch.jit.script(model).save(str(path))
    return path


def test_vfid_is_zero_for_identical_sets_and_grows_with_noise(tiny_video_network):
    from clear_ray.evaluation.vfid import VideoFeatures, vfid

    network = VideoFeatures(tiny_video_network)
    assert network.kind == "torchscript"
    rng = np.random.default_rng(3)
    clips = [rng.integers(0, 256, (5, 24, 32, 3), dtype=np.uint8) for _ in range(8)]

    def noisy(sigma):
        return [np.clip(c + rng.normal(0, sigma, c.shape), 0, 255).astype(np.uint8) for c in clips]

    real = np.array([network(c) for c in clips])
    assert real.shape == (8, 6)
    assert vfid(real, np.array([network(c) for c in clips])) == pytest.approx(0.0, abs=1e-12)
    small, large = (vfid(real, np.array([network(c) for c in noisy(s)])) for s in (8.0, 48.0))
    assert 0 < small < large


def test_an_i3d_state_dict_loads_by_name_and_junk_is_refused(tmp_path):
    import torch

    from clear_ray.evaluation.i3d import build_i3d
    from clear_ray.evaluation.perceptual import WeightsError
    from clear_ray.evaluation.vfid import VideoFeatures

    torch.manual_seed(0)
    model = build_i3d(num_classes=7).eval()
    state = model.state_dict()
    # pytorch-i3d's names, as in rgb_imagenet.pt
    assert {"Conv3d_1a_7x7.conv3d.weight", "Conv3d_1a_7x7.bn.running_var", "Mixed_5c.b3b.conv3d.weight",
            "logits.conv3d.bias"} <= state.keys()
    torch.save(state, tmp_path / "i3d.pt")
    network = VideoFeatures(tmp_path / "i3d.pt")
    clip = np.random.default_rng(4).integers(0, 256, (9, 48, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = model.features(torch.from_numpy(clip).permute(3, 0, 1, 2)[None].float() / 255.0)
    assert network.kind == "i3d" and network(clip).shape == (1024,)
    np.testing.assert_allclose(network(clip), expected.numpy().ravel(), rtol=1e-5, atol=1e-9)
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="neither a TorchScript module nor"):
        VideoFeatures(tmp_path / "other.pt")


def test_bench_run_fills_dists_and_vfid_from_local_files(tiny_bench, tmp_path, monkeypatch, tiny_dists_files,
                                                         tiny_video_network):
    from clear_ray.evaluation.bench import run_bench
    from clear_ray.evaluation.perceptual import PerceptualConfig

    monkeypatch.setitem(sys.modules, "clear_ray.pipeline", None)
    bench = tmp_path / "set"
    shutil.copytree(tiny_bench, bench, ignore=shutil.ignore_patterns("cache", "results"))
    dists, vgg = tiny_dists_files
    perceptual = PerceptualConfig(dists_weights=dists, vgg16_weights=vgg, vfid_weights=tiny_video_network)
    report = run_bench(bench, "lite", "test", work_dir=tmp_path, log=lambda line: None, perceptual=perceptual,
                       serial=True)
    assert not any("not computed (no local weights" in note and "DISTS" in note for note in report.notes)
    rows = {(r["method"], r["language"]): r for r in report.rows}
    # Text-free clips are untouched: DISTS 0. Burned-in text is a difference: DISTS > 0.
    assert rows[("input", "none")]["dists"] == pytest.approx(0.0, abs=1e-6)
    assert rows[("input", "all")]["dists"] > 1e-4
    assert rows[("input", "all")]["vfid"] > 0.0  # two texted clips: a covariance exists
    assert rows[("input", "none")]["vfid"] is None  # one text-free clip in this split: no covariance
    # The weights are part of the cache key: without them the rows are computed again.
    again = run_bench(bench, "lite", "test", work_dir=tmp_path, log=lambda line: None, serial=True)
    assert again.reference_computed == 3
    assert {(r["method"], r["language"]): r for r in again.rows}[("input", "all")]["dists"] is None
