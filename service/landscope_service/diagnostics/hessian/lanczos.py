"""Lanczos with full reorthogonalisation and thick restarts for extreme eigenpairs.

The run grows a Krylov basis (:class:`.krylov.KrylovRun`, or :class:`.krylov.BlockKrylovRun`
for ``block_size > 1``) whose Rayleigh quotient ``T_n = V_n^T A V_n`` gives Ritz pairs
``(theta, y = V_n s)`` with residual norms ``||A y - theta y|| = beta_n |s_n|`` at no extra
product. Convergence is judged on them: a pair is converged when
``beta_n |s_n| <= tol * ||A||_est`` with ``||A||_est`` the largest Ritz value in modulus.
For a symmetric ``A`` the eigenvalue error is then at most the residual, and at most
``residual^2 / gap`` when the eigenvalue is separated by ``gap`` from the rest of the
spectrum (Parlett, "The Symmetric Eigenvalue Problem", section 11.7).

When the basis reaches ``max_basis`` vectors the run restarts thickly (Wu & Simon 2000):
the wanted Ritz vectors at both ends of the spectrum and as many neighbours are kept, so
no product is wasted. The bottom end of a Hessian spectrum clustered around zero
converges slowly because its gap relative to the spectral width is tiny; an unrestarted
run (the default ``max_basis`` allows a few hundred vectors) is the Krylov-optimal use of
the products there.

GPU paths never synchronise per product: breakdown and convergence are examined every
``check_every`` products (on CPU breakdown is checked every product, which costs nothing).

The Krylov bases live in :mod:`.krylov` and one SLQ probe in :mod:`.slq`; both are
re-exported here for callers that import them from this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..monitor import Monitor
from .krylov import BlockKrylovRun, KrylovRun, rademacher
from .operators import CurvatureOperator
from .slq import QuadratureResult, lanczos_quadrature

__all__ = [
    "TOL_FLOOR_ULPS",
    "BlockKrylovRun",
    "EigenResult",
    "KrylovRun",
    "QuadratureResult",
    "lanczos_extremes",
    "lanczos_quadrature",
    "rademacher",
]


TOL_FLOOR_ULPS = 30
"""The residual tolerance is raised to ``30 eps(dtype)`` at least (3.6e-6 in float32): a
product computed in float32 carries rounding errors of order ``eps ||A||`` times a modest
factor, so smaller residuals cannot be certified and the run would only stall."""


@dataclass
class EigenResult:
    """Extreme eigenpairs from :func:`lanczos_extremes`.

    Attributes:
        top: the ``k_top`` largest Ritz values, descending (float64).
        top_residuals: their residual norms ``||A y - theta y||``.
        bottom: the ``k_bottom`` smallest Ritz values, ascending.
        bottom_residuals: their residual norms.
        top_vectors, bottom_vectors: ``(P, k)`` Ritz vectors (None unless asked).
        converged: True when every wanted pair met the tolerance.
        status: ``"converged"`` or ``"not_converged"``.
        tol: the tolerance used (relative to ``norm_estimate``; at least the dtype floor).
        norm_estimate: ``||A||`` estimate (largest Ritz value in modulus).
        num_products, num_restarts: cost.
        run: the final Krylov run (its basis deflates trace probes).
        ritz_values: every Ritz value of the final basis, ascending.
        ritz_vectors_t: eigenvectors ``S`` of ``T_n`` (columns, in ``ritz_values`` order):
            the Ritz vectors are ``V_n S``; ``S[0, :]**2`` are the quadrature weights of the
            start vector when the run was not restarted.
        ritz_residuals: residual norms of every Ritz pair.
    """

    top: np.ndarray
    top_residuals: np.ndarray
    bottom: np.ndarray
    bottom_residuals: np.ndarray
    top_vectors: Tensor | None
    bottom_vectors: Tensor | None
    converged: bool
    status: str
    tol: float
    norm_estimate: float
    num_products: int
    num_restarts: int
    run: KrylovRun | BlockKrylovRun
    ritz_values: np.ndarray
    ritz_vectors_t: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    ritz_residuals: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))


def _wanted(theta: np.ndarray, k_top: int, k_bottom: int) -> tuple[np.ndarray, np.ndarray]:
    n = theta.size
    top = np.arange(n - 1, max(n - 1 - k_top, -1), -1)
    bottom = np.arange(0, min(k_bottom, n))
    return top, bottom


def lanczos_extremes(
    op: CurvatureOperator,
    *,
    k_top: int = 1,
    k_bottom: int = 0,
    tol: float = 1e-6,
    max_products: int = 1000,
    max_basis: int = 400,
    seed: int = 0,
    v0: Tensor | None = None,
    return_vectors: bool = False,
    monitor: Monitor | None = None,
    stage: str = "lanczos",
    check_every: int | None = None,
    block_size: int = 1,
) -> EigenResult:
    """Top-``k_top`` and bottom-``k_bottom`` eigenpairs of a symmetric operator.

    Lanczos with full reorthogonalisation and thick restart (module docstring). The run
    stops when every wanted Ritz pair has ``residual <= tol * ||A||_est``, when the basis
    spans an invariant subspace, or when ``max_products`` products are spent; in the last
    case ``status`` is ``"not_converged"``.

    Args:
        op: the operator (``A @ v``, ``shape``, ``dtype``, ``device``).
        k_top: how many of the largest (algebraic) eigenvalues.
        k_bottom: how many of the smallest (algebraic) eigenvalues, i.e. the most negative
            curvature.
        tol: residual tolerance relative to ``||A||_est``; raised to at least
            ``TOL_FLOOR_ULPS * eps(dtype)`` (the result's ``tol`` is the one used).
        max_products: budget of products.
        max_basis: largest basis before a thick restart (memory: ``max_basis * P`` numbers).
        seed: seed of the Rademacher start vector (used when ``v0`` is None).
        v0: start vector, shape ``(P,)``.
        return_vectors: also return the Ritz vectors.
        monitor: progress and cancellation; checked between products.
        stage: progress stage name.
        check_every: products between convergence checks; default ``max(2, n // 20)``
            (at most 5% of the products are spent past convergence).
        block_size: ``b``; ``b > 1`` runs block Lanczos (:class:`BlockKrylovRun`), which
            resolves eigenvalues repeated up to ``b`` times and multiplies ``b`` vectors per
            batched product; the start block is ``v0`` plus ``b - 1`` seeded Gaussian vectors.

    Returns:
        An :class:`EigenResult`.

    Raises:
        ValueError: on bad ``k_top``, ``k_bottom``, ``tol``, budgets or shapes.
    """
    p = int(op.shape[0])
    if k_top < 0 or k_bottom < 0 or k_top + k_bottom == 0:
        raise ValueError(f"Need k_top, k_bottom >= 0 and k_top + k_bottom >= 1, got "
                         f"k_top={k_top}, k_bottom={k_bottom}.")
    if k_top > p or k_bottom > p:
        raise ValueError(f"k_top={k_top} and k_bottom={k_bottom} must not exceed P={p}.")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}.")
    if max_products < 1:
        raise ValueError(f"max_products must be >= 1, got {max_products}.")
    wanted = k_top + k_bottom
    if block_size < 1 or (block_size > 1 and block_size > p // 2):
        raise ValueError(f"block_size must be 1 or in [2, P/2={p // 2}], got {block_size}.")
    if max_basis < min(p, wanted + 2 * block_size):
        raise ValueError(f"max_basis must be >= k_top + k_bottom + 2 * block_size = "
                         f"{wanted + 2 * block_size}, got {max_basis}.")
    monitor = monitor or Monitor()
    # residuals below ~30 ulps of ||A|| are rounding noise of the products themselves
    tol = max(tol, TOL_FLOOR_ULPS * torch.finfo(op.dtype).eps)
    if v0 is None:
        v0 = rademacher(p, seed, dtype=op.dtype, device=op.device)
    run: KrylovRun | BlockKrylovRun
    if block_size == 1:
        run = KrylovRun.start(op, v0, max_basis, seed)
    else:
        run = BlockKrylovRun.start(op, v0, block_size, max_basis, seed)
    sync_every_step = op.device.type == "cpu"
    next_check = min(max(wanted + 1, 4), run.capacity)
    theta = np.zeros(0)
    s = np.zeros((0, 0))
    res = np.zeros(0)
    scale = 0.0
    converged = False
    while True:
        monitor.check()
        run.step(op)
        full = run.size + block_size > run.capacity
        if sync_every_step or run.size >= next_check or full:
            run.repair_breakdown(op)
            full = run.size + block_size > run.capacity
        if full or run.products >= max_products or run.invariant or run.size >= next_check:
            theta, s, res = run.ritz()
            scale = float(np.max(np.abs(theta))) if theta.size else 0.0
            top, bottom = _wanted(theta, k_top, k_bottom)
            idx = np.concatenate([top, bottom])
            enough = theta.size >= min(wanted, p)
            ok = bool(enough and np.all(res[idx] <= tol * max(scale, 1e-300)))
            if run.invariant or run.size >= p:
                ok = True
                res = np.zeros_like(theta)
            worst = float(np.max(res[idx] / max(scale, 1e-300))) if idx.size else 0.0
            frac = run.products / max_products
            if worst > 0 and tol < 1:
                frac = max(frac, min(1.0, math.log(max(worst, tol)) / math.log(tol)))
            monitor.report(stage, min(frac, 1.0),
                           f"{run.products} products, worst relative residual {worst:.1e}")
            if ok:
                converged = True
                break
            if run.products >= max_products:
                break
            if full:
                extra = max(1, (run.capacity // 2 - wanted) // 2)
                n = theta.size
                keep_top = np.arange(n - 1, max(n - 1 - (k_top + extra if k_top else 0), -1), -1)
                keep_bot = np.arange(0, min(k_bottom + extra if k_bottom else 0, n))
                keep = np.unique(np.concatenate([keep_bot, keep_top]))
                run.restart(keep, theta, s)
            step = check_every if check_every is not None else max(2, run.size // 20)
            next_check = min(run.size + step, run.capacity)
    top, bottom = _wanted(theta, k_top, k_bottom)
    top_vecs = bottom_vecs = None
    if return_vectors:
        basis = run.basis[: run.size]
        st = torch.as_tensor(s[:, top], dtype=op.dtype, device=op.device)
        sb = torch.as_tensor(s[:, bottom], dtype=op.dtype, device=op.device)
        top_vecs = basis.T @ st
        bottom_vecs = basis.T @ sb
    return EigenResult(
        top=theta[top].copy(),
        top_residuals=res[top].copy(),
        bottom=theta[bottom].copy(),
        bottom_residuals=res[bottom].copy(),
        top_vectors=top_vecs,
        bottom_vectors=bottom_vecs,
        converged=converged,
        status="converged" if converged else "not_converged",
        tol=tol,
        norm_estimate=scale,
        num_products=run.products,
        num_restarts=run.restarts,
        run=run,
        ritz_values=theta.copy(),
        ritz_vectors_t=s,
        ritz_residuals=res.copy(),
    )
