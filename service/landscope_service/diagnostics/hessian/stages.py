"""Stage functions of ``hessian_spectrum`` that spend products outside the Lanczos runs.

``probe_piece`` is one independent SLQ/trace probe (an executor piece, fanned out over
workers by the service); ``ggn_split`` splits Ritz values into Gauss-Newton and residual
parts. Each checks for cancellation between products.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..monitor import Monitor
from ..output import json_float as _f
from ..problem import Problem
from .krylov import rademacher
from .operators import GGNOperator, HessianOperator
from .slq import lanczos_quadrature
from .trace import deflated_sample

__all__ = ["ggn_split", "probe_piece"]


def probe_piece(problem: Problem, payload: dict[str, Any], monitor: Monitor) -> dict[str, Any]:
    """One independent probe: SLQ nodes/weights and trace samples (an executor piece).

    Payload: ``seed`` (int), ``steps`` (int), ``hvp`` (variant), ``deflation`` (``(P, k)``
    tensor or None), ``deflation_values`` (``(k,)`` tensor or None), ``groups``
    (list of ``[start, stop]``).

    Returns:
        ``nodes``, ``weights`` (lists), ``plain`` and ``deflated`` trace samples,
        ``blocks`` (per-group samples of the block trace) and ``products``.
    """
    op = HessianOperator(problem, str(payload["hvp"]))
    p = int(op.shape[0])
    g = rademacher(p, int(payload["seed"]), dtype=op.dtype, device=op.device)
    quad = lanczos_quadrature(op, g, int(payload["steps"]), seed=int(payload["seed"]),
                              monitor=monitor, stage="probe")
    g64 = g.to(torch.float64)
    hg = quad.first_product.to(torch.float64) * math.sqrt(p)
    defl = payload.get("deflation")
    vals = payload.get("deflation_values")
    plain, deflated = deflated_sample(
        g64, hg, None if defl is None else defl.to(torch.float64),
        None if vals is None else vals.to(torch.float64),
    )
    blocks = [float(g64[a:b] @ hg[a:b]) for a, b in payload.get("groups", [])]
    return {
        "nodes": [float(x) for x in quad.nodes],
        "weights": [float(x) for x in quad.weights],
        "plain": plain,
        "deflated": deflated,
        "blocks": blocks,
        "products": int(quad.products),
    }



def ggn_split(problem: Problem, vectors: Tensor, values: np.ndarray,
               monitor: Monitor | None = None) -> tuple[list[dict[str, float | None]], int]:
    """Rayleigh quotients of the GGN and the residual on Ritz vectors (one GGN product each).

    Returns:
        ``[{{"eigenvalue", "ggn", "residual"}}]`` per vector and the products spent.
    """
    if vectors.shape[1] == 0:
        return [], 0
    ggn = GGNOperator(problem)
    cols = []
    for j in range(vectors.shape[1]):
        if monitor is not None:
            monitor.check()
        cols.append(ggn @ vectors[:, j])
    gv = torch.stack(cols, dim=1)
    v64 = vectors.to(torch.float64)
    norms = (v64 * v64).sum(0)
    parts = ((v64 * gv.to(torch.float64)).sum(0) / norms).cpu().numpy()
    out = [{"eigenvalue": _f(lam), "ggn": _f(gq), "residual": _f(lam - gq)}
           for lam, gq in zip(values, parts, strict=True)]
    return out, ggn.num_products

