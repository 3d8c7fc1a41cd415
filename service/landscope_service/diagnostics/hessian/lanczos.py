"""Lanczos with full reorthogonalisation and thick restarts for extreme eigenpairs.

The basis ``V = [v_1, ..., v_n]`` is kept orthonormal to working precision by projecting
every new product against the whole basis twice when needed ("twice is enough", Giraud,
Langou & Rozloznik 2005). The projection coefficients are stored as the Rayleigh quotient
``T = V^T A V`` (tridiagonal in exact arithmetic, an arrowhead plus tridiagonal after a
restart), so that after ``n`` products

    A V_n = V_n T_n + beta_n v_{n+1} e_n^T.

A Ritz pair ``(theta, y = V_n s)`` of ``T_n s = theta s`` then has the residual norm
``||A y - theta y|| = beta_n |s_n|`` at no extra product; convergence is judged on it:
a pair is converged when ``beta_n |s_n| <= tol * ||A||_est`` with ``||A||_est`` the largest
Ritz value in modulus. For a symmetric ``A`` the eigenvalue error is then at most the
residual, and at most ``residual^2 / gap`` when the eigenvalue is separated by ``gap``
from the rest of the spectrum (Parlett, "The Symmetric Eigenvalue Problem", section 11.7).

When the basis reaches ``max_basis`` vectors the run restarts thickly (Wu & Simon 2000,
"Thick-restart Lanczos method for large symmetric eigenvalue problems"): the wanted Ritz
vectors at both ends of the spectrum and as many neighbours are kept, and the relation
above continues to hold with ``T`` an arrowhead, so no product is wasted. The bottom end
of a Hessian spectrum clustered around zero converges slowly because its gap relative
to the spectral width is tiny; an unrestarted run (the default ``max_basis`` allows a
few hundred vectors) is the Krylov-optimal use of the products there.

GPU paths never synchronise per product: breakdown and convergence are examined every
``check_every`` products (on CPU breakdown is checked every product, which costs nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..monitor import Monitor
from .operators import CurvatureOperator

__all__ = [
    "TOL_FLOOR_ULPS",
    "BlockKrylovRun",
    "EigenResult",
    "KrylovRun",
    "lanczos_extremes",
    "lanczos_quadrature",
    "rademacher",
]


TOL_FLOOR_ULPS = 30
"""The residual tolerance is raised to ``30 eps(dtype)`` at least (3.6e-6 in float32): a
product computed in float32 carries rounding errors of order ``eps ||A||`` times a modest
factor, so smaller residuals cannot be certified and the run would only stall."""


def rademacher(size: int, seed: int, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A Rademacher vector (entries +-1 with equal probability), reproducible by ``seed``."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    signs = torch.randint(0, 2, (size,), generator=gen, dtype=torch.int8)
    return (signs.to(device=device, dtype=dtype) * 2 - 1)


@dataclass
class KrylovRun:
    """An orthonormal Krylov basis and the projected matrix ``T = V^T A V``.

    Attributes:
        basis: ``(n_max + 1, P)`` storage; rows ``[:size]`` hold ``V``.
        t: ``(n_max + 1, n_max + 1)`` float64 storage of ``T`` (on the operator's device).
        size: number of vectors multiplied so far (``n``); row ``size`` holds ``v_{n+1}``.
        products: products spent by this run.
        restarts: thick restarts done.
        invariant: True when the basis spans an invariant subspace of the whole space.
    """

    basis: Tensor
    t: Tensor
    size: int = 0
    products: int = 0
    restarts: int = 0
    invariant: bool = False
    first_product: Tensor | None = None
    _checked: int = 0
    _next_seed: int = 0

    @classmethod
    def start(cls, op: CurvatureOperator, v0: Tensor, max_basis: int, seed: int) -> KrylovRun:
        p = int(op.shape[0])
        if v0.shape != (p,):
            raise ValueError(f"Shape mismatch: expected ({p},), got {tuple(v0.shape)}.")
        n_max = min(max_basis, p)
        # uninitialised: pages are touched only as the basis grows
        basis = torch.empty((n_max + 1, p), dtype=op.dtype, device=op.device)
        t = torch.zeros((n_max + 1, n_max + 1), dtype=torch.float64, device=op.device)
        v = v0.to(dtype=op.dtype, device=op.device)
        basis[0] = v / torch.linalg.vector_norm(v)
        return cls(basis=basis, t=t, _next_seed=seed + 7919)

    @property
    def capacity(self) -> int:
        return int(self.basis.shape[0]) - 1

    def step(self, op: CurvatureOperator) -> Tensor:
        """Multiply ``v_{n+1}``, orthogonalise, store ``T``'s column; returns ``beta``."""
        n = self.size
        q = self.basis[n]
        w = op @ q
        self.products += 1
        if n == 0 and self.restarts == 0 and self.first_product is None:
            self.first_product = w.clone()
        basis = self.basis[: n + 1]
        h = basis @ w
        w = w - basis.T @ h
        norm0 = torch.linalg.vector_norm(w)
        if w.device.type == "cpu":
            # a second pass only if the first lost digits (Kahan's criterion)
            h_norm = torch.linalg.vector_norm(h)
            if float(norm0) < 0.7 * float(h_norm) or n < 2:
                h2 = basis @ w
                w = w - basis.T @ h2
                h = h + h2
        else:
            h2 = basis @ w
            w = w - basis.T @ h2
            h = h + h2
        beta = torch.linalg.vector_norm(w)
        h64 = h.to(torch.float64)
        self.t[: n + 1, n] = h64
        self.t[n, : n + 1] = h64
        self.t[n + 1, n] = beta.to(torch.float64)
        self.t[n, n + 1] = beta.to(torch.float64)
        self.size = n + 1
        if self.size < self.basis.shape[0]:
            self.basis[n + 1] = w / torch.clamp(beta, min=torch.finfo(w.dtype).tiny)
        return beta

    def repair_breakdown(self, op: CurvatureOperator) -> None:
        """Detect ``beta ~ 0`` since the last check; continue in a fresh random direction.

        After a breakdown at step ``i`` the basis spans an invariant subspace; the steps
        after it (GPU paths only) are discarded and a random vector orthogonal to the basis
        starts a new Krylov sequence with zero coupling, so ``T`` stays ``V^T A V``.
        """
        n = self.size
        start = self._checked
        if n == 0 or start >= n:
            return
        betas = torch.diagonal(self.t[: n + 1, : n + 1], offset=-1)[start:n].cpu()
        scale = float(self.t[:n, :n].abs().max().cpu())
        eps = torch.finfo(op.dtype).eps
        thr = 50 * eps * max(scale, torch.finfo(torch.float64).tiny)
        bad = (betas <= thr).nonzero()
        self._checked = n
        if bad.numel() == 0:
            return
        self.size = start + int(bad[0, 0]) + 1
        self.t[self.size :, :] = 0
        self.t[:, self.size :] = 0
        self._checked = self.size
        if self.size >= int(op.shape[0]):
            self.invariant = True
            return
        if self.size >= self.basis.shape[0]:
            return
        gen = torch.Generator(device="cpu").manual_seed(self._next_seed)
        self._next_seed += 1
        r = torch.randn(int(op.shape[0]), generator=gen, dtype=torch.float64)
        r = r.to(dtype=op.dtype, device=op.device)
        basis = self.basis[: self.size]
        for _ in range(2):
            r = r - basis.T @ (basis @ r)
        self.basis[self.size] = r / torch.linalg.vector_norm(r)

    def ritz(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ritz values (ascending), eigenvectors ``S`` of ``T_n``, residuals ``beta_n |s_n|``."""
        n = self.size
        tn = self.t[:n, :n].cpu()
        # torch's eigh honours torch.set_num_threads (numpy's BLAS may oversubscribe)
        theta_t, s_t = torch.linalg.eigh(0.5 * (tn + tn.T))
        theta, s = theta_t.numpy(), s_t.numpy()
        beta = float(self.t[n, n - 1].cpu()) if n < self.t.shape[0] else 0.0
        if self.invariant:
            beta = 0.0
        return theta, s, np.abs(beta * s[-1, :])

    def restart(self, keep: np.ndarray, theta: np.ndarray, s: np.ndarray) -> None:
        """Thick restart keeping the Ritz vectors ``V_n s[:, keep]``."""
        n = self.size
        k = int(keep.size)
        s_keep = torch.as_tensor(s[:, keep], dtype=self.basis.dtype, device=self.basis.device)
        y = s_keep.T @ self.basis[:n]
        nxt = self.basis[n].clone()
        beta = self.t[n, n - 1].clone()
        self.basis[:k] = y
        self.basis[k] = nxt
        self.t.zero_()
        th = torch.as_tensor(theta[keep], dtype=torch.float64, device=self.t.device)
        self.t[range(k), range(k)] = th
        coup = beta * torch.as_tensor(s[n - 1, keep], dtype=torch.float64, device=self.t.device)
        self.t[k, :k] = coup
        self.t[:k, k] = coup
        self.size = k
        self._checked = k
        self.restarts += 1


@dataclass
class BlockKrylovRun:
    """Block Lanczos: a basis grown ``b`` vectors per step, ``T = V^T A V`` banded.

    ``A V_n = V_n T_n + Q_{n+1} C e_n^T`` with ``Q_{n+1}`` the next orthonormal block and
    ``C`` (``b x b``) its coupling, so a Ritz pair's residual is ``||C s_last||`` with
    ``s_last`` the last ``b`` entries of its vector. A block finds up to ``b`` copies of a
    repeated eigenvalue, which a single vector cannot (its Krylov space holds one
    direction of each eigenspace), and pushes ``b`` vectors through one batched product
    (cheaper per vector on accelerators; on one CPU thread it is not, see the benchmark).
    Golub & Underwood 1977, "The block Lanczos method for computing eigenvalues".

    Attributes:
        basis: ``(n_max + b, P)`` storage; rows ``[:size]`` hold ``V``, the next ``b`` rows
            the block to multiply next.
        t: float64 ``T`` storage.
        block: ``b``.
        size: vectors multiplied so far.
        products, restarts, invariant, first_product: as in :class:`KrylovRun`.
    """

    basis: Tensor
    t: Tensor
    block: int
    size: int = 0
    products: int = 0
    restarts: int = 0
    invariant: bool = False
    first_product: Tensor | None = None
    _next_seed: int = 0

    @classmethod
    def start(cls, op: CurvatureOperator, v0: Tensor, block: int, max_basis: int, seed: int
              ) -> BlockKrylovRun:
        p = int(op.shape[0])
        if v0.shape != (p,):
            raise ValueError(f"Shape mismatch: expected ({p},), got {tuple(v0.shape)}.")
        if not 1 <= block <= p // 2:
            raise ValueError(f"block_size must be in [1, P/2={p // 2}], got {block}.")
        # the basis and the next block must fit in R^P: at most P - b vectors are multiplied
        n_max = min(max_basis, p - block)
        basis = torch.empty((n_max + block, p), dtype=op.dtype, device=op.device)
        t = torch.zeros((n_max + block, n_max + block), dtype=torch.float64, device=op.device)
        gen = torch.Generator(device="cpu").manual_seed(int(seed) + 104_729)
        rest = torch.randn(block - 1, p, generator=gen, dtype=torch.float64)
        v = torch.cat([v0.to(torch.float64).unsqueeze(0), rest]).to(op.dtype).to(op.device)
        q, _ = torch.linalg.qr(v.T)
        basis[:block] = q.T
        # keep the first basis vector exactly v0 / ||v0|| (it is the quadrature's probe)
        basis[0] = v[0] / torch.linalg.vector_norm(v[0])
        return cls(basis=basis, t=t, block=block, _next_seed=seed + 7919)

    @property
    def capacity(self) -> int:
        return int(self.basis.shape[0]) - self.block

    def step(self, op: CurvatureOperator) -> None:
        """Multiply the next block, orthogonalise it twice, store ``T``, form the next block."""
        n, b = self.size, self.block
        q = self.basis[n : n + b]
        w = (op @ q.T).T
        self.products += b
        if self.first_product is None and n == 0 and self.restarts == 0:
            self.first_product = w[0].clone()
        basis = self.basis[: n + b]
        h = basis @ w.T
        w = w - h.T @ basis
        h2 = basis @ w.T
        w = w - h2.T @ basis
        h = (h + h2).to(torch.float64)
        self.t[: n + b, n : n + b] = h
        self.t[n : n + b, : n + b] = h.T
        self.size = n + b
        if self.size >= int(op.shape[0]):
            self.invariant = True
            return
        qn, r = torch.linalg.qr(w.T)
        if w.device.type == "cpu":  # deflate rank-deficient directions (exact breakdown)
            scale = float(self.t[: n + b, : n + b].abs().max())
            thr = 50 * torch.finfo(op.dtype).eps * max(scale, 1e-300)
            small = (torch.abs(torch.diagonal(r)) <= thr).nonzero().flatten().tolist()
            for j in small:
                gen = torch.Generator(device="cpu").manual_seed(self._next_seed)
                self._next_seed += 1
                x = torch.randn(int(op.shape[0]), generator=gen, dtype=torch.float64)
                x = x.to(dtype=op.dtype, device=op.device)
                others = torch.cat([basis, qn.T[:j], qn.T[j + 1 :]])
                for _ in range(2):
                    x = x - others.T @ (others @ x)
                qn[:, j] = x / torch.linalg.vector_norm(x)
                r[j, :] = 0
        if self.size + b <= self.basis.shape[0]:
            self.basis[self.size : self.size + b] = qn.T
        r64 = r.to(torch.float64)
        if self.size + b <= self.t.shape[0]:
            self.t[self.size : self.size + b, n : n + b] = r64
            self.t[n : n + b, self.size : self.size + b] = r64.T

    def ritz(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ritz values (ascending), eigenvectors of ``T_n`` and residuals ``||C s_last||``."""
        n, b = self.size, self.block
        tn = self.t[:n, :n].cpu()
        theta_t, s_t = torch.linalg.eigh(0.5 * (tn + tn.T))
        if self.invariant or n + b > self.t.shape[0]:
            return theta_t.numpy(), s_t.numpy(), np.zeros(n)
        c = self.t[n : n + b, max(n - b, 0) : n].cpu()
        last = s_t[max(n - b, 0) : n, :]
        res = torch.linalg.vector_norm(c @ last, dim=0)
        return theta_t.numpy(), s_t.numpy(), res.numpy()

    def restart(self, keep: np.ndarray, theta: np.ndarray, s: np.ndarray) -> None:
        """Thick restart keeping ``V_n s[:, keep]`` and the next block (arrowhead ``T``)."""
        n, b = self.size, self.block
        k = int(keep.size)
        s_keep = torch.as_tensor(s[:, keep], dtype=self.basis.dtype, device=self.basis.device)
        y = s_keep.T @ self.basis[:n]
        nxt = self.basis[n : n + b].clone()
        c = self.t[n : n + b, n - b : n].clone()
        self.basis[:k] = y
        self.basis[k : k + b] = nxt
        self.t.zero_()
        th = torch.as_tensor(theta[keep], dtype=torch.float64, device=self.t.device)
        self.t[range(k), range(k)] = th
        coup = c @ torch.as_tensor(s[n - b : n, keep], dtype=torch.float64, device=self.t.device)
        self.t[k : k + b, :k] = coup
        self.t[:k, k : k + b] = coup.T
        self.size = k
        self.restarts += 1

    def repair_breakdown(self, op: CurvatureOperator) -> None:
        """Breakdown is handled inside :meth:`step` (deflation of the block)."""


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


def lanczos_quadrature(
    op: CurvatureOperator,
    v0: Tensor,
    num_steps: int,
    *,
    seed: int = 0,
    reorthogonalize: bool = False,
    monitor: Monitor | None = None,
    stage: str = "slq",
) -> dict[str, Any]:
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

    Returns:
        ``{"nodes": ndarray, "weights": ndarray, "products": int, "first_product": Tensor,
        "q1": Tensor}``: ``first_product`` is ``A q_1`` (for trace estimators).
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
        return {"nodes": theta, "weights": s[0, :] ** 2, "products": run.products,
                "first_product": run.first_product, "q1": q1}
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
    return {"nodes": theta, "weights": s[0, :] ** 2, "products": len(alphas),
            "first_product": first, "q1": q1}
