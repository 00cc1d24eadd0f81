"""The Fréchet distance between two Gaussians, and between two sets of feature vectors.

    d^2 = |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1^1/2 S2 S1^1/2)^1/2)

The last trace equals Tr((S1 S2)^1/2) (the two matrices are similar). We take it from the
eigenvalues of the symmetric positive semi-definite S1^1/2 S2 S1^1/2 (``eigh``), so the
result is real by construction and exact to float64 rounding even when the covariances
are singular, which they are whenever a set has fewer vectors than dimensions (12 clips
and 1024 I3D features). The usual ``scipy.linalg.sqrtm(S1 @ S2)`` route can return complex
values or fail on such matrices and needs an epsilon added to the diagonal.
"""

from __future__ import annotations

import math

import numpy as np


def _clean_eigenvalues(values: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise set to 0: ``eigh`` leaves about
    n * eps * max|value| on the zero eigenvalues of a singular matrix, and the square
    root would blow 1e-16 up to 1e-8."""
    tolerance = len(values) * np.finfo(np.float64).eps * max(float(np.abs(values).max(initial=0.0)), 1e-300)
    return np.where(values > tolerance, values, 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(_clean_eigenvalues(values))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes disagree: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    cross = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    trace_sqrt = float(np.sqrt(_clean_eigenvalues(cross)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff) + float(np.trace(sigma1)) + float(np.trace(sigma2)) - 2.0 * trace_sqrt
    # Rounding can leave -1e-12 for identical inputs; a distance is never negative.
    return max(value, 0.0)


def feature_statistics(features_nd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample covariance (ddof 1, as FID and VFID use ``np.cov``) of N vectors."""
    features_nd = np.asarray(features_nd, np.float64)
    if features_nd.ndim != 2 or len(features_nd) < 2:
        raise ValueError(f"need at least 2 feature vectors (N, D), got shape {features_nd.shape}")
    return features_nd.mean(axis=0), np.cov(features_nd, rowvar=False)


def frechet_distance_of_sets(real_nd: np.ndarray, fake_nd: np.ndarray) -> float:
    """FID/VFID between two sets of feature vectors; NaN when either set has < 2 vectors
    (a covariance needs two)."""
    if len(real_nd) < 2 or len(fake_nd) < 2:
        return math.nan
    return frechet_distance(*feature_statistics(real_nd), *feature_statistics(fake_nd))
