"""Krylov bases for symmetric operators: single-vector and block, with thick restart.

:class:`KrylovRun` grows an orthonormal basis ``V = [v_1, ..., v_n]`` one product at a
time and keeps it orthonormal to working precision by projecting every new product
against the whole basis twice when needed ("twice is enough", Giraud, Langou & Rozloznik
2005). The projection coefficients are stored as the Rayleigh quotient ``T = V^T A V``
(tridiagonal in exact arithmetic, an arrowhead plus tridiagonal after a restart), so that
after ``n`` products

    A V_n = V_n T_n + beta_n v_{n+1} e_n^T,

and a Ritz pair ``(theta, y = V_n s)`` of ``T_n s = theta s`` has the residual norm
``||A y - theta y|| = beta_n |s_n|`` at no extra product (:meth:`KrylovRun.ritz`).

A thick restart (Wu & Simon 2000, "Thick-restart Lanczos method for large symmetric
eigenvalue problems") keeps chosen Ritz vectors and the next basis vector; the relation
above continues to hold with ``T`` an arrowhead, so no product is wasted.
:class:`BlockKrylovRun` is the same for a block of ``b`` vectors per product (Golub &
Underwood 1977).

GPU paths never synchronise per product: breakdown is examined when the caller asks
(:meth:`KrylovRun.repair_breakdown`); on CPU it may be checked every product at no cost.
The eigensolver over these bases is :mod:`.lanczos`; one quadrature probe is :mod:`.slq`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .operators import CurvatureOperator

__all__ = ["BlockKrylovRun", "KrylovRun", "rademacher"]


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
