"""Numerical rank of the Jacobian, and the linear algebra at one point.

Tolerance rule (explicit, reported with every result). With ``eps`` the float64 machine
epsilon (``2.22e-16``), ``m = rN`` rows, ``P`` columns and ``sigma_1`` the largest
singular value of ``J``:

* dense route (singular values of ``J`` itself, backward error ``~ max(m, P) eps
  sigma_1``; the rule of ``numpy.linalg.matrix_rank``):

      rank = #{ i : sigma_i > max(m, P) * eps * sigma_1 };

* Gram route (eigenvalues ``lambda_i = sigma_i^2`` of ``K = J J^T`` or ``J^T J``; forming
  ``K`` in floating point perturbs it by ``~ max(m, P) eps ||J||^2``, so only
  ``lambda_i`` above that are resolved):

      rank = #{ i : lambda_i > max(m, P) * eps * lambda_1 }
           = #{ i : sigma_i > sqrt(max(m, P) * eps) * sigma_1 }.

A caller may replace the relative tolerance (``rtol``) by its own value; the rule string
then says so. The gap at the cut is ``sigma_rank / sigma_{rank+1}``: a large gap means the
rank does not hinge on the tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..monitor import Monitor
from .jacobian import GramSide, ResidualFunction

__all__ = [
    "EPS64",
    "HessianNullity",
    "Linearization",
    "RankResult",
    "Route",
    "default_rtol",
    "hessian_nullity",
    "numerical_rank",
]

Route = Literal["dense", "gram"]
EPS64 = float(torch.finfo(torch.float64).eps)


def default_rtol(route: Route, num_rows: int, num_cols: int) -> float:
    """Relative tolerance on singular values (see the module docstring).

    Args:
        route: ``"dense"`` (SVD of ``J``) or ``"gram"`` (eigenvalues of a Gram matrix).
        num_rows: ``m = rN``.
        num_cols: ``P``.

    Returns:
        ``max(m, P) eps`` for dense, ``sqrt(max(m, P) eps)`` for gram.
    """
    c = max(num_rows, num_cols) * EPS64
    if route == "dense":
        return c
    if route == "gram":
        return math.sqrt(c)
    raise ValueError(f"route must be 'dense' or 'gram', got {route!r}.")


def _rule_text(route: Route, rtol: float, user: bool) -> str:
    if user:
        return f"sigma_i > rtol * sigma_max with rtol = {rtol:.3e} (set by the caller)"
    if route == "dense":
        return (
            "sigma_i > max(rN, P) * eps(float64) * sigma_max "
            f"(singular values of the dense J; rtol = {rtol:.3e})"
        )
    return (
        "lambda_i > max(rN, P) * eps(float64) * lambda_max for the eigenvalues lambda_i = "
        "sigma_i^2 of the Gram matrix, i.e. sigma_i > sqrt(max(rN, P) * eps) * sigma_max "
        f"(rtol = {rtol:.3e})"
    )


@dataclass(frozen=True)
class RankResult:
    """The numerical rank of ``J`` and where the cut falls.

    Attributes:
        rank: number of singular values above the threshold.
        singular_values: all ``min(m, P)`` singular values, descending (float64, CPU).
        rtol: relative tolerance used; threshold = ``rtol * sigma_max``.
        threshold: absolute threshold on singular values.
        rule: the rule, in words and symbols.
        route: ``"dense"`` or ``"gram"``.
        gap_ratio: ``sigma_rank / sigma_{rank+1}`` (None when one side is missing or
            the value below the cut is exactly 0, in which case the gap is infinite).
    """

    rank: int
    singular_values: Tensor
    rtol: float
    threshold: float
    rule: str
    route: Route
    gap_ratio: float | None

    @property
    def sigma_above(self) -> float | None:
        """The smallest singular value kept (``sigma_rank``)."""
        return float(self.singular_values[self.rank - 1]) if self.rank > 0 else None

    @property
    def sigma_below(self) -> float | None:
        """The largest singular value cut (``sigma_{rank+1}``)."""
        n = int(self.singular_values.shape[0])
        return float(self.singular_values[self.rank]) if self.rank < n else None


def numerical_rank(
    singular_values: Tensor,
    *,
    route: Route,
    num_rows: int,
    num_cols: int,
    rtol: float | None = None,
) -> RankResult:
    """Rank from singular values under the explicit rule of this module.

    Args:
        singular_values: non-negative, any order (sorted here, descending).
        route: which computation produced them (fixes the default ``rtol``).
        num_rows: ``m``; num_cols: ``P``.
        rtol: override of the relative tolerance (``> 0``).

    Returns:
        A :class:`RankResult`.

    Example:
        >>> s = torch.tensor([3.0, 1.0, 1e-17], dtype=torch.float64)
        >>> numerical_rank(s, route="dense", num_rows=3, num_cols=5).rank
        2
    """
    if singular_values.ndim != 1:
        raise ValueError(
            f"Shape mismatch: expected a vector, got {tuple(singular_values.shape)}."
        )
    if rtol is not None and not (rtol > 0 and math.isfinite(rtol)):
        raise ValueError(f"rtol must be a finite number > 0, got {rtol}.")
    s = torch.sort(singular_values.detach().to("cpu", torch.float64), descending=True).values
    user = rtol is not None
    tol = default_rtol(route, num_rows, num_cols) if rtol is None else float(rtol)
    smax = float(s[0]) if s.numel() else 0.0
    threshold = tol * smax
    rank = int((s > threshold).sum()) if smax > 0 else 0
    gap: float | None = None
    if 0 < rank < s.numel() and float(s[rank]) > 0:
        gap = float(s[rank - 1] / s[rank])
    return RankResult(
        rank=rank,
        singular_values=s,
        rtol=tol,
        threshold=threshold,
        rule=_rule_text(route, tol, user),
        route=route,
        gap_ratio=gap,
    )


class Linearization:
    """``R`` and ``J`` at one point, factored once, with the operations that need them.

    Dense route: ``J = U diag(s) V^T`` (thin SVD). Gram route, ``side="rows"``:
    ``J J^T = U diag(lambda) U^T``; ``side="cols"``: ``J^T J = W diag(lambda) W^T``.
    A class because the factorisation is the expensive, reused state.

    Args:
        fn: the residual function.
        theta: the point (flat float64).
        route: ``"dense"`` or ``"gram"``.
        rtol: rank tolerance override (see :func:`numerical_rank`).
        monitor: progress and cancellation while ``J`` or ``K`` is built.
        gram_outer_chunk: samples per outer block of the Gram route (default: from memory).
    """

    def __init__(
        self,
        fn: ResidualFunction,
        theta: Tensor,
        route: Route,
        *,
        rtol: float | None = None,
        monitor: Monitor | None = None,
        gram_outer_chunk: int | None = None,
    ) -> None:
        if route not in ("dense", "gram"):
            raise ValueError(f"route must be 'dense' or 'gram', got {route!r}.")
        self.fn = fn
        self.theta = theta
        self.route: Route = route
        self.residual = fn.residual(theta)
        m, P = fn.num_equations, fn.num_params
        self.side: GramSide = fn.gram_side()
        self._J: Tensor | None = None
        if route == "dense":
            J = fn.jacobian(theta, monitor=monitor)
            U, s, Vh = torch.linalg.svd(J, full_matrices=False)
            self._J, self._U, self._s, self._V = J, U, s, Vh.T
            svals = s
        else:
            K = fn.gram(theta, self.side, monitor=monitor, outer_chunk=gram_outer_chunk)
            lam, Q = torch.linalg.eigh(K)
            lam, Q = lam.flip(0), Q.flip(1)  # descending
            self._lam, self._Q = lam, Q
            svals = lam.clamp_min(0).sqrt()
        self.rank_result = numerical_rank(svals, route=route, num_rows=m, num_cols=P, rtol=rtol)

    @property
    def rank(self) -> int:
        return self.rank_result.rank

    # --------------------------------------------------------------- products
    def J(self, v: Tensor) -> Tensor:
        """``J v``."""
        return self._J @ v if self._J is not None else self.fn.jvp(self.theta, v)

    def JT(self, u: Tensor) -> Tensor:
        """``J^T u``."""
        return self._J.T @ u if self._J is not None else self.fn.vjp(self.theta, u)

    # --------------------------------------------------------------- solves
    def lm_step(self, damping: float) -> Tensor:
        """Levenberg-Marquardt step ``delta = -(J^T J + mu I)^{-1} J^T R``.

        Dense: ``-V diag(s / (s^2 + mu)) U^T R``. Gram rows: the push-through identity
        ``(J^T J + mu)^{-1} J^T = J^T (J J^T + mu)^{-1}`` gives ``-J^T U (Lambda + mu)^{-1}
        U^T R``. Gram cols: ``-W (Lambda + mu)^{-1} W^T J^T R``.
        """
        if not damping >= 0:
            raise ValueError(f"damping must be >= 0, got {damping}.")
        R = self.residual
        if self.route == "dense":
            s = self._s
            return -(self._V @ ((s / (s * s + damping)) * (self._U.T @ R)))
        lam, Q = self._lam.clamp_min(0), self._Q
        if self.side == "rows":
            w = Q @ ((Q.T @ R) / (lam + damping))
            return -self.JT(w)
        g = self.JT(R)
        return -(Q @ ((Q.T @ g) / (lam + damping)))

    def gauss_newton_step(self) -> Tensor:
        """Minimum-norm Gauss-Newton step ``-J^+ R`` with the rank cut (pseudo-inverse).

        Dense: ``-V_k diag(1/s_k) U_k^T R``; Gram rows: ``-J^T U_k Lambda_k^{-1} U_k^T R``;
        Gram cols: ``-W_k Lambda_k^{-1} W_k^T J^T R``; ``k`` = numerical rank.
        """
        k = self.rank
        R = self.residual
        if k == 0:
            return torch.zeros_like(self.theta)
        if self.route == "dense":
            return -(self._V[:, :k] @ ((self._U[:, :k].T @ R) / self._s[:k]))
        lam, Q = self._lam[:k], self._Q[:, :k]
        if self.side == "rows":
            return -self.JT(Q @ ((Q.T @ R) / lam))
        return -(Q @ ((Q.T @ self.JT(R)) / lam))

    def project_row_space(self, g: Tensor) -> Tensor:
        """Orthogonal projection of ``g`` onto ``range(J^T)`` (the complement of null(J)).

        Dense: ``V_k V_k^T g``; Gram rows: ``J^T U_k Lambda_k^{-1} U_k^T J g``;
        Gram cols: ``W_k W_k^T g``.
        """
        k = self.rank
        if k == 0:
            return torch.zeros_like(g)
        if self.route == "dense":
            Vk = self._V[:, :k]
            return Vk @ (Vk.T @ g)
        Q = self._Q[:, :k]
        if self.side == "rows":
            return self.JT(Q @ ((Q.T @ self.J(g)) / self._lam[:k]))
        return Q @ (Q.T @ g)

    def project_null_space(self, g: Tensor) -> Tensor:
        """``g - P_row g``: the component of ``g`` in null(J), the tangent space of M."""
        return g - self.project_row_space(g)


@dataclass(frozen=True)
class HessianNullity:
    """Nullity of the loss Hessian at a point.

    Attributes:
        method: ``"exact"`` (dense Hessian by HVPs) or ``"gram"`` (``(2/m) J^T J``
            through the Gram eigenvalues).
        nullity: number of eigenvalues within ``tolerance`` of zero.
        tolerance: absolute tolerance on eigenvalues.
        rule: the rule, in words.
        largest_eigenvalue: ``lambda_max(H)``.
        smallest_eigenvalue: ``lambda_min(H)`` (exact method only).
        residual_part_norm: ``||H - (2/m) J^T J||_2`` (exact method only): the part of
            the Hessian due to nonzero residuals.
    """

    method: Literal["exact", "gram"]
    nullity: int
    tolerance: float
    rule: str
    largest_eigenvalue: float
    smallest_eigenvalue: float | None
    residual_part_norm: float | None


def hessian_nullity(
    lin: Linearization, *, exact: bool, monitor: Monitor | None = None
) -> HessianNullity:
    """Nullity of ``H = d^2 L`` at ``lin.theta``, ``L = ||R||^2 / m``.

    ``H = (2/m) J^T J + E`` with ``E = (2/m) sum_i R_i d^2 R_i``, which vanishes at an
    exact fit. By Weyl's inequality each eigenvalue of ``H`` lies within ``||E||_2`` of one
    of ``(2/m) J^T J``, so

    * exact: ``tol = 2 ||E||_2 + max(m, P) eps ||H||_2`` and the nullity is
      ``#{ |lambda_i(H)| <= tol }``, with ``E = H - (2/m) J^T J`` computed from the
      dense Hessian (``P`` HVPs) and ``J``;
    * gram: ``H ~ (2/m) J^T J``, whose nonzero eigenvalues are those of ``(2/m) K``;
      nullity ``= P - rank(J)`` under the Gram rule.

    Args:
        lin: linearisation at the point.
        exact: build the dense Hessian (only for small P).
        monitor: progress and cancellation.
    """
    fn = lin.fn
    m, P = fn.num_equations, fn.num_params
    scale = 2.0 / m
    svals = lin.rank_result.singular_values
    if not exact:
        lam_max = scale * float(svals[0]) ** 2 if svals.numel() else 0.0
        return HessianNullity(
            method="gram",
            nullity=P - lin.rank,
            tolerance=scale * lin.rank_result.threshold**2,
            rule=(
                "H = (2/(rN)) J^T J at an exact fit; its positive eigenvalues are "
                "(2/(rN)) sigma_i^2 for the sigma_i above the rank cut, so "
                "nullity = P - rank(J)"
            ),
            largest_eigenvalue=lam_max,
            smallest_eigenvalue=None,
            residual_part_norm=None,
        )
    H = fn.loss_hessian(lin.theta, monitor=monitor)
    if lin._J is not None:
        J = lin._J
    else:
        J = fn.jacobian(lin.theta, monitor=monitor)
    G = scale * (J.T @ J)
    E = H - G
    e_norm = float(torch.linalg.matrix_norm(0.5 * (E + E.T), ord=2))
    evals = torch.linalg.eigvalsh(H)
    h_norm = float(evals.abs().max()) if evals.numel() else 0.0
    tol = 2.0 * e_norm + max(m, P) * EPS64 * h_norm
    nullity = int((evals.abs() <= tol).sum())
    return HessianNullity(
        method="exact",
        nullity=nullity,
        tolerance=tol,
        rule=(
            "|lambda_i(H)| <= 2 ||H - (2/(rN)) J^T J||_2 + max(rN, P) * eps(float64) * "
            "||H||_2 (Weyl: the residual part moves each eigenvalue by at most its norm)"
        ),
        largest_eigenvalue=float(evals[-1]),
        smallest_eigenvalue=float(evals[0]),
        residual_part_norm=e_norm,
    )
