"""Spectral density by stochastic Lanczos quadrature (SLQ).

The spectral density ``phi(t) = P^-1 sum_i delta(t - lambda_i)`` is estimated from
``n_v`` probes ``q = g / ||g||`` (``g`` Rademacher): ``m`` Lanczos steps from ``q`` give Gauss
quadrature nodes ``theta_j`` and weights ``tau_j`` with
``q^T f(H) q ~= sum_j tau_j f(theta_j)``, exact for polynomials of degree ``< 2m``, and
``E[q^T f(H) q] = P^-1 tr f(H)`` (Lin, Saad & Yang 2016, "Approximating spectral densities
of large matrices", section 3.2; Ubaru, Chen & Saad 2017). The density is smoothed by a
Gaussian kernel,

    phi_sigma(t) = n_v^-1 sum_probes sum_j tau_j exp(-(t - theta_j)^2 / (2 sigma^2))
                   / sqrt(2 pi sigma^2),

on a uniform grid. Default broadening: the variance ``sigma^2 = 1e-5 * max(1, W)`` with
``W`` the width of the spectrum, as in Ghorbani, Krishnan & Xiao 2019 ("An investigation
into neural net optimization via Hessian eigenvalue density") and PyHessian (Yao et al.
2020), so that plots are comparable with theirs; the grid spans the nodes plus ``3 sigma``
either side. The raw nodes and weights are returned too, because moments and negative mass
are better computed from them than from the smoothed curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DensityEstimate",
    "default_sigma",
    "negative_mass",
    "negative_mass_bounds",
    "slq_density",
    "slq_moments",
]


@dataclass(frozen=True)
class DensityEstimate:
    """A Gaussian-broadened SLQ density on a grid.

    Attributes:
        grid: ``(G,)`` evaluation points.
        values: ``(G,)`` density values (integrates to ~1).
        sigma: the Gaussian's standard deviation.
    """

    grid: np.ndarray
    values: np.ndarray
    sigma: float


def default_sigma(lo: float, hi: float) -> float:
    """``sqrt(1e-5 * max(1, hi - lo))`` (Ghorbani et al. 2019; PyHessian)."""
    return math.sqrt(1e-5 * max(1.0, hi - lo))


def slq_density(
    nodes: Sequence[np.ndarray],
    weights: Sequence[np.ndarray],
    *,
    grid_points: int = 512,
    sigma: float | None = None,
) -> DensityEstimate:
    """Broaden SLQ nodes and weights into a density on a uniform grid.

    Args:
        nodes: per probe, the Ritz values.
        weights: per probe, the quadrature weights (each sums to 1).
        grid_points: number of grid points (>= 2).
        sigma: kernel standard deviation; None for :func:`default_sigma`.

    Raises:
        ValueError: on mismatched inputs, ``grid_points < 2`` or ``sigma <= 0``.
    """
    if len(nodes) != len(weights) or not nodes:
        raise ValueError(f"Need as many node as weight arrays (>= 1), got {len(nodes)} and "
                         f"{len(weights)}.")
    if grid_points < 2:
        raise ValueError(f"grid_points must be >= 2, got {grid_points}.")
    all_nodes = np.concatenate([np.asarray(n, dtype=np.float64) for n in nodes])
    lo, hi = float(all_nodes.min()), float(all_nodes.max())
    sig = default_sigma(lo, hi) if sigma is None else float(sigma)
    if not sig > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}.")
    grid = np.linspace(lo - 3 * sig, hi + 3 * sig, grid_points)
    values = np.zeros_like(grid)
    for n, w in zip(nodes, weights, strict=True):
        n = np.asarray(n, dtype=np.float64)
        w = np.asarray(w, dtype=np.float64)
        if n.shape != w.shape:
            raise ValueError(f"Shape mismatch: nodes {n.shape} vs weights {w.shape}.")
        z = (grid[:, None] - n[None, :]) / sig
        values += (np.exp(-0.5 * z * z) * w[None, :]).sum(axis=1)
    values /= len(nodes) * sig * math.sqrt(2 * math.pi)
    return DensityEstimate(grid=grid, values=values, sigma=sig)


def slq_moments(nodes: Sequence[np.ndarray], weights: Sequence[np.ndarray], order: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Moments ``P^-1 tr(H^k)``, ``k = 1..order``, and their standard errors over probes."""
    per = np.array([[float(np.sum(np.asarray(w) * np.asarray(n) ** k))
                     for k in range(1, order + 1)] for n, w in zip(nodes, weights, strict=True)])
    mean = per.mean(axis=0)
    se = per.std(axis=0, ddof=1) / math.sqrt(per.shape[0]) if per.shape[0] > 1 else (
        np.full(order, np.inf))
    return mean, se


def negative_mass(nodes: Sequence[np.ndarray], weights: Sequence[np.ndarray], threshold: float
                  ) -> tuple[float, float]:
    """Mass of the density below ``-threshold`` and its standard error over probes.

    ``P * mass`` estimates the number of eigenvalues below ``-threshold`` (Morse index).
    """
    per = np.array([float(np.sum(np.asarray(w)[np.asarray(n) < -threshold]))
                    for n, w in zip(nodes, weights, strict=True)])
    se = float(per.std(ddof=1) / math.sqrt(per.size)) if per.size > 1 else math.inf
    return float(per.mean()), se


def negative_mass_bounds(nodes: Sequence[np.ndarray], weights: Sequence[np.ndarray],
                         threshold: float) -> tuple[float, float]:
    """Bracket of each probe's spectral distribution function at ``t = -threshold``.

    For Gauss quadrature nodes ``theta_1 < ... < theta_m`` with weights ``tau_j`` and
    ``theta_k < t <= theta_{k+1}``, the Chebyshev-Markov-Stieltjes inequalities give
    ``sum_{j<k} tau_j <= F(t) <= sum_{j<=k+1} tau_j`` (Golub & Meurant, "Matrices, Moments
    and Quadrature"; Chen, Trogdon & Ubaru 2021, "Analysis of stochastic Lanczos quadrature
    for spectrum approximation"): the node nearest to each side of ``t`` may belong to
    either side. Averaged over probes, the bracket bounds the estimate of the mass below
    ``t`` up to probe noise; it is wide when much spectral mass sits near ``t`` (a bulk
    around zero).

    Returns:
        ``(low, high)`` averaged over probes.
    """
    t = -threshold
    lows, highs = [], []
    for n, w in zip(nodes, weights, strict=True):
        n = np.asarray(n, dtype=np.float64)
        w = np.asarray(w, dtype=np.float64)
        order = np.argsort(n)
        n, w = n[order], w[order]
        below = np.nonzero(n < t)[0]
        k = int(below[-1]) if below.size else -1  # last node below t
        lows.append(float(w[:k].sum()) if k > 0 else 0.0)
        highs.append(float(w[: min(k + 2, n.size)].sum()))
    return float(np.mean(lows)), float(np.mean(highs))
