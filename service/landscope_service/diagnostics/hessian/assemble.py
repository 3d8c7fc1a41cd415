"""Result assembly of ``hessian_spectrum``: eigenvalue blocks, density, artifacts.

Turns measured numbers into the result's JSON blocks and files; computes no products.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..output import Artifact
from ..output import json_float as _f
from ..output import json_floats as _fl
from .density import (
    default_sigma,
    negative_mass,
    negative_mass_bounds,
    slq_density,
    slq_moments,
)
from .plots import density_artifacts, density_caption

__all__ = ["artifacts", "density_json", "eig_block"]


def eig_block(values: np.ndarray, residuals: np.ndarray, tol: float, norm: float
               ) -> dict[str, Any]:
    """Eigenvalues, residuals and per-value convergence (residual <= tol * ||H||)."""
    conv = [bool(r <= tol * max(norm, 1e-300)) for r in residuals]
    return {"eigenvalues": _fl(values), "residuals": _fl(residuals), "converged": conv}



def density_json(nodes: list[np.ndarray], weights: list[np.ndarray], opts: dict[str, Any],
                  threshold: float, p: int, steps: int, products: int, exact: bool
                  ) -> dict[str, Any]:
    """The ``density`` block: broadened SLQ density, moments and negative mass.

    ``exact`` (all eigenvalues, equal weights) makes the negative-mass bounds the mass
    itself; otherwise they are the Gauss-quadrature bracket of every probe.
    """
    sigma = opts["density_sigma"]
    if sigma is None:
        every = np.concatenate([np.asarray(n, dtype=np.float64) for n in nodes])
        sigma = opts["density_sigma_scale"] * default_sigma(float(every.min()),
                                                            float(every.max()))
    dens = slq_density(nodes, weights, grid_points=int(opts["density_grid_points"]),
                       sigma=sigma)
    mom, mom_se = slq_moments(nodes, weights, 2)
    mass, mass_se = negative_mass(nodes, weights, threshold)
    lo, hi = negative_mass_bounds(nodes, weights, threshold) if not exact else (mass, mass)
    return {
        "grid": _fl(dens.grid),
        "values": _fl(dens.values),
        "sigma": _f(dens.sigma),
        "nodes": [_fl(n) for n in nodes],
        "weights": [_fl(w) for w in weights],
        "num_probes": len(nodes),
        "steps": steps,
        "num_products": products,
        "moments": _fl(mom),
        "moments_std_error": _fl(mom_se),
        "negative_mass": _f(mass),
        "negative_mass_std_error": _f(mass_se),
        "negative_count_estimate": _f(mass * p),
        "negative_mass_bounds": [_f(lo), _f(hi)],
        "negative_count_bounds": [_f(lo * p), _f(hi * p)],
        "exact": exact,
    }



def artifacts(density: dict[str, Any] | None, result: dict[str, Any], opts: dict[str, Any],
               top_vectors: Tensor | None, bottom_vectors: Tensor | None,
               dtype: str | None = None) -> list[Artifact]:
    """``density.png`` and ``density.svg`` (when a density was computed) and, when asked,
    ``eigenvectors.safetensors`` (rows are unit eigenvectors in ``flatten(params)`` order)."""
    arts: list[Artifact] = []
    if density is not None:
        grid = np.asarray([x if x is not None else np.nan for x in density["grid"]])
        vals = np.asarray([x if x is not None else np.nan for x in density["values"]])
        title = ("Hessian spectrum (exact)" if result["exact"] else
                 "Hessian spectral density (SLQ)")
        top = [x for x in result["top"]["eigenvalues"] if x is not None]
        bottom = [x for x in result["bottom"]["eigenvalues"] if x is not None]
        label = "exact, broadened" if result["exact"] else "SLQ density"
        caption = density_caption(
            exact=bool(result["exact"]), num_probes=density["num_probes"],
            steps=density["steps"], sigma=density["sigma"], grid_points=len(density["grid"]),
            num_params=result["num_params"], num_samples=result["num_samples"],
            loss=result["loss"], dtype=dtype)
        arts += density_artifacts(grid, vals, top=top, bottom=bottom, caption=caption,
                                  title=title, label=label)
    if opts["return_eigenvectors"]:
        from safetensors.torch import save

        tensors: dict[str, Tensor] = {}
        if top_vectors is not None:
            tensors["top"] = top_vectors.T.contiguous().cpu()
            tensors["top_eigenvalues"] = torch.tensor(
                [x or 0.0 for x in result["top"]["eigenvalues"]], dtype=torch.float64)
        if bottom_vectors is not None:
            tensors["bottom"] = bottom_vectors.T.contiguous().cpu()
            tensors["bottom_eigenvalues"] = torch.tensor(
                [x or 0.0 for x in result["bottom"]["eigenvalues"]], dtype=torch.float64)
        arts.append(Artifact("eigenvectors.safetensors", "application/octet-stream",
                             save(tensors, metadata={"layout": "rows are unit eigenvectors "
                                                     "in flatten(params) order"})))
    return arts

