"""Measures on a computed slice: its minimum, the curvature along each axis, convexity.

All inputs are float64 numpy arrays; ``loss`` is ``(len(beta), len(alpha))`` for 2-D and
``(len(alpha),)`` for 1-D.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["axis_curvature", "convexity_map", "slice_minimum"]


def slice_minimum(loss: np.ndarray, alpha: np.ndarray, beta: np.ndarray | None
                  ) -> dict[str, Any] | None:
    """The smallest finite value of the grid and its coordinates (None if none is finite)."""
    finite = np.isfinite(loss)
    if not finite.any():
        return None
    flat = int(np.argmin(np.where(finite, loss, np.inf)))
    if loss.ndim == 1:
        return {"loss": float(loss[flat]), "alpha": float(alpha[flat]), "beta": None,
                "index": [flat]}
    if beta is None:
        raise ValueError("A 2-D loss grid needs the beta axis.")
    i, j = np.unravel_index(flat, loss.shape)
    return {"loss": float(loss[i, j]), "alpha": float(alpha[j]), "beta": float(beta[i]),
            "index": [int(i), int(j)]}


def axis_curvature(centre: float, plus: float, minus: float, step: float) -> float:
    """Second difference ``(L(h) - 2 L(0) + L(-h)) / h^2``.

    Along a direction ``d`` this approximates ``d^T H d`` with error
    ``h^2 / 12 * d^4 L / dalpha^4`` (exact for a quadratic loss), plus rounding of order
    ``eps * |L| / h^2``.
    """
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}.")
    return (plus - 2.0 * centre + minus) / (step * step)


def convexity_map(loss: np.ndarray, alpha: np.ndarray, beta: np.ndarray,
                  rel_tol: float = 1e-8) -> dict[str, Any]:
    """``|lambda_min / lambda_max|`` of the slice's 2-D Hessian at every interior grid point.

    The 2x2 Hessian of ``L(alpha, beta)`` is taken by central differences on the grid
    (second order, uniform spacings ``h_a``, ``h_b``)::

        H_aa = (L[i, j+1] - 2 L[i, j] + L[i, j-1]) / h_a^2
        H_bb = (L[i+1, j] - 2 L[i, j] + L[i-1, j]) / h_b^2
        H_ab = (L[i+1, j+1] - L[i+1, j-1] - L[i-1, j+1] + L[i-1, j-1]) / (4 h_a h_b)

    With eigenvalues ``lambda_min <= lambda_max`` the map is ``|lambda_min / lambda_max|``
    as Li et al. (2018, section 6) draw it; a point is *non-convex* when
    ``lambda_min < -rel_tol * max(|lambda|)``. Boundary points (no central difference) and
    points with ``lambda_max == 0`` are None (NaN in the arrays). This is the curvature of
    the 2-D slice, not of the full Hessian: a slice can look convex where the network
    has negative curvature off the plane.
    """
    if loss.ndim != 2 or loss.shape != (beta.size, alpha.size):
        raise ValueError(f"Shape mismatch: expected ({beta.size}, {alpha.size}), got "
                         f"{loss.shape}.")
    ratio = np.full(loss.shape, np.nan)
    lam_min = np.full(loss.shape, np.nan)
    lam_max = np.full(loss.shape, np.nan)
    if loss.shape[0] >= 3 and loss.shape[1] >= 3:
        ha = float(alpha[1] - alpha[0])
        hb = float(beta[1] - beta[0])
        c = loss[1:-1, 1:-1]
        haa = (loss[1:-1, 2:] - 2 * c + loss[1:-1, :-2]) / ha**2
        hbb = (loss[2:, 1:-1] - 2 * c + loss[:-2, 1:-1]) / hb**2
        hab = (loss[2:, 2:] - loss[2:, :-2] - loss[:-2, 2:] + loss[:-2, :-2]) / (4 * ha * hb)
        mean = 0.5 * (haa + hbb)
        rad = np.sqrt((0.5 * (haa - hbb)) ** 2 + hab**2)
        lo, hi = mean - rad, mean + rad
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.abs(lo / hi)
        r[~np.isfinite(r)] = np.nan
        ratio[1:-1, 1:-1] = r
        lam_min[1:-1, 1:-1] = lo
        lam_max[1:-1, 1:-1] = hi
    scale = np.maximum(np.abs(lam_min), np.abs(lam_max))
    valid = np.isfinite(lam_min) & np.isfinite(lam_max)
    nonconvex = valid & (lam_min < -rel_tol * scale)
    n_valid = int(valid.sum())
    return {
        "ratio": ratio,
        "lambda_min": lam_min,
        "lambda_max": lam_max,
        "nonconvex_fraction": (float(nonconvex.sum()) / n_valid) if n_valid else None,
        "max_ratio": float(np.nanmax(ratio)) if np.isfinite(ratio).any() else None,
        "interior_points": n_valid,
    }

