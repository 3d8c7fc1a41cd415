"""One probe of stochastic Lanczos quadrature (SLQ): Gauss nodes and weights.

The probes' nodes and weights are broadened into a density and reduced to moments and
negative mass in :mod:`.density`; the trace estimators of :mod:`.trace` reuse a probe's
first product ``A q_1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..monitor import Monitor
from .krylov import KrylovRun
from .operators import CurvatureOperator

__all__ = ["QuadratureResult", "lanczos_quadrature"]


@dataclass(frozen=True)
class QuadratureResult:
    """The Gauss quadrature of one probe's spectral measure, from :func:`lanczos_quadrature`.

    Attributes:
        nodes: ``(m,)`` Ritz values of ``T_m``, ascending (float64).
        weights: ``(m,)`` their weights ``tau_j = (e_1^T s_j)^2`` (they sum to 1).
        products: operator products spent (``m``, or fewer after a breakdown).
        first_product: ``A q_1``, the first product (for trace estimators).
        q1: the unit start vector ``q_1 = v0 / ||v0||``.
    """

    nodes: np.ndarray
    weights: np.ndarray
    products: int
    first_product: Tensor
    q1: Tensor


def lanczos_quadrature(
    op: CurvatureOperator,
    v0: Tensor,
    num_steps: int,
    *,
    seed: int = 0,
    reorthogonalize: bool = False,
    monitor: Monitor | None = None,
    stage: str = "slq",
) -> QuadratureResult:
    """Gauss quadrature nodes and weights of ``v0``'s spectral measure (one SLQ probe).

    With ``m`` Lanczos steps from ``q_1 = v0 / ||v0||``, the eigenpairs ``(theta_j, s_j)`` of
    ``T_m`` give ``q_1^T f(A) q_1 ~= sum_j tau_j f(theta_j)`` with ``tau_j = (e_1^T s_j)^2``,
    exact for polynomials of degree ``< 2m`` (Golub & Meurant, "Matrices, Moments and
    Quadrature", chapter 6; Ubaru, Chen & Saad 2017, "Fast estimation of tr(f(A)) via
    stochastic Lanczos quadrature").

    By default only the three-term recurrence (with a local second orthogonalisation against
    the two previous vectors) is used: the quadrature of finite-precision Lanczos stays
    accurate although the basis loses orthogonality -- lost orthogonality shows up as
    repeated ("ghost") nodes whose weights add up (Greenbaum 1989, "Behavior of slightly
    perturbed Lanczos and conjugate-gradient recurrences"; Knizhnerman 1996) -- so a probe
    costs its products and O(P) memory, not a full reorthogonalisation against the basis.
    ``reorthogonalize=True`` keeps the basis orthonormal (O(m P) memory and work per step).

    Args:
        op: the operator (``A @ v``, ``shape``, ``dtype``, ``device``).
        v0: the probe, shape ``(P,)``; it need not be normalised.
        num_steps: ``m``, at most ``P``; fewer are taken after a breakdown (the
            quadrature is then exact).
        seed: seed of the restart directions (``reorthogonalize=True`` only).
        reorthogonalize: keep the basis orthonormal (full reorthogonalisation).
        monitor: progress and cancellation; checked before every product.
        stage: progress stage name.

    Returns:
        A :class:`QuadratureResult`.

    Raises:
        ValueError: if ``num_steps < 1``.
    """
    p = int(op.shape[0])
    steps = min(num_steps, p)
    if steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}.")
    monitor = monitor or Monitor()
    sync = op.device.type == "cpu"
    if reorthogonalize:
        run = KrylovRun.start(op, v0, steps, seed)
        q1 = run.basis[0].clone()
        while run.size < steps:
            monitor.check()
            run.step(op)
            if sync:
                run.repair_breakdown(op)
                if run.invariant:
                    break
            monitor.report(stage, run.size / steps, f"{run.size}/{steps} Lanczos steps")
        if not sync:
            run.repair_breakdown(op)
        theta, s, _ = run.ritz()
        if run.first_product is None:
            raise RuntimeError("No Lanczos step was taken.")
        return QuadratureResult(nodes=theta, weights=s[0, :] ** 2, products=run.products,
                                first_product=run.first_product, q1=q1)
    v = v0.to(dtype=op.dtype, device=op.device)
    q = v / torch.linalg.vector_norm(v)
    q1 = q.clone()
    q_prev = torch.zeros_like(q)
    beta_prev = torch.zeros((), dtype=op.dtype, device=op.device)
    alphas: list[Tensor] = []
    betas: list[Tensor] = []
    first: Tensor | None = None
    tiny = torch.finfo(op.dtype).tiny
    for j in range(steps):
        monitor.check()
        w = op @ q
        if first is None:
            first = w.clone()
        w = w - beta_prev * q_prev
        alpha = q @ w
        w = w - alpha * q
        # local second pass against the last two vectors
        c1 = q @ w
        c0 = q_prev @ w
        w = w - c1 * q - c0 * q_prev
        alpha = alpha + c1
        beta = torch.linalg.vector_norm(w)
        alphas.append(alpha)
        betas.append(beta)
        monitor.report(stage, (j + 1) / steps, f"{j + 1}/{steps} Lanczos steps")
        if j + 1 == steps:
            break
        if sync and float(beta) <= 50 * torch.finfo(op.dtype).eps * float(
                torch.stack(alphas).abs().max()):
            break  # invariant subspace: the quadrature is exact
        q_prev, q = q, w / torch.clamp(beta, min=tiny)
        beta_prev = beta
    a = torch.stack(alphas).to(torch.float64).cpu().numpy()
    b = torch.stack(betas).to(torch.float64).cpu().numpy()
    m = a.size
    if not sync:  # truncate at a breakdown, examined once at the end on accelerators
        thr = 50 * torch.finfo(op.dtype).eps * max(float(np.abs(a).max()), 1e-300)
        bad = np.nonzero(b[: m - 1] <= thr)[0]
        if bad.size:
            m = int(bad[0]) + 1
            a = a[:m]
    t = np.diag(a[:m]) + np.diag(b[: m - 1], 1) + np.diag(b[: m - 1], -1)
    theta_t, s_t = torch.linalg.eigh(torch.from_numpy(t))
    theta, s = theta_t.numpy(), s_t.numpy()
    if first is None:
        raise RuntimeError("No Lanczos step was taken.")
    return QuadratureResult(nodes=theta, weights=s[0, :] ** 2, products=len(alphas),
                            first_product=first, q1=q1)
