"""Curvature operators: the Hessian, the generalised Gauss-Newton matrix and their blocks.

An operator is anything with ``shape``, ``dtype``, ``device`` and ``A @ V`` for ``V`` of
shape ``(P,)`` or ``(P, k)`` (:class:`CurvatureOperator`). Every operator here counts the
vectors it has multiplied (``num_products``), which is how budgets and benchmarks are
accounted: a block of ``k`` vectors counts ``k`` products.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.func import grad, jvp, vjp

from ..problem import Params, Problem, loss_value
from .hvp import FlatHVP, as_rows, join_flat, make_hvp, resolve_variant, split_flat

__all__ = [
    "BlockOperator",
    "CurvatureOperator",
    "DenseOperator",
    "GGNOperator",
    "HessianOperator",
]


@runtime_checkable
class CurvatureOperator(Protocol):
    """The operator protocol the algorithms need."""

    @property
    def shape(self) -> tuple[int, int]: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def num_products(self) -> int: ...

    def __matmul__(self, vec: Tensor) -> Tensor: ...


class _Counted:
    """Shared bookkeeping: shape, dtype, device and the product counter."""

    def __init__(self, size: int, dtype: torch.dtype, device: torch.device) -> None:
        self._size = size
        self._dtype = dtype
        self._device = device
        self._count = 0

    @property
    def shape(self) -> tuple[int, int]:
        return (self._size, self._size)

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def num_products(self) -> int:
        """Number of vectors multiplied so far (a ``(P, k)`` block counts ``k``)."""
        return self._count

    def _count_input(self, vec: Tensor) -> None:
        as_rows(vec, self._size)
        self._count += 1 if vec.ndim == 1 else int(vec.shape[1])


class HessianOperator(_Counted):
    """The Hessian ``H = d^2 L / d theta^2`` of the full-data mean loss, as an operator.

    Products are accumulated over ``problem.batches()`` (memory bounded by one batch) with
    the HVP variant chosen by ``variant`` (see :mod:`.hvp`). Blocks ``(P, k)`` are pushed
    through in chunks of ``block_size`` vectors at once.

    Args:
        problem: the problem; ``problem.params`` is the point where ``H`` is taken.
        variant: HVP variant, ``"auto"`` picks the fastest measured one.
        block_size: vectors per batched (vmapped) chunk.

    Example:
        >>> op = HessianOperator(problem)                    # doctest: +SKIP
        >>> hv = op @ torch.ones(op.shape[0], dtype=op.dtype)  # doctest: +SKIP
    """

    def __init__(self, problem: Problem, variant: str = "auto", block_size: int = 8) -> None:
        super().__init__(problem.num_params, problem.dtype, problem.device)
        self.problem = problem
        self.variant = resolve_variant(problem, variant)
        self._hvp: FlatHVP = make_hvp(problem, self.variant, block_size)

    def __matmul__(self, vec: Tensor) -> Tensor:
        self._count_input(vec)
        return self._hvp(vec)


class GGNOperator(_Counted):
    """The generalised Gauss-Newton matrix ``G = sum_mu w_mu J_mu^T (d^2 l / d f^2) J_mu``.

    ``J_mu = dH(x_mu; theta)/d theta`` is the network Jacobian and ``d^2 l / d f^2`` the
    Hessian of the (mean-reduced, batch-weighted) loss with respect to the outputs
    (Schraudolph 2002; Martens 2020, "New insights and perspectives on the natural
    gradient method", section 8). For PyTorch's mean mse over ``r`` outputs it is
    ``2 / (N r) I``; for cross-entropy ``(diag(p) - p p^T) / N`` per sample. ``G`` is
    positive semi-definite for both losses and ``H = G + R`` with the residual
    ``R = sum_mu w_mu sum_k (d l / d f_k) d^2 f_k / d theta^2``.

    Each product is a jvp (``J v``), an output-space Hessian product and a vjp (``J^T u``).
    """

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.num_params, problem.dtype, problem.device)
        self.problem = problem
        self._params = {k: t.detach() for k, t in problem.params.items()}

    def _one(self, v: Params) -> Params:
        problem = self.problem

        def out_loss(o: Tensor, y: Tensor) -> Tensor:
            return loss_value(problem.loss, o, y)

        def batch_gv(xb: Tensor, yb: Tensor) -> Params:
            def f(p: Params) -> Tensor:
                return problem.forward(p, xb)

            out, jv = jvp(f, (self._params,), (v,))[:2]
            hu = jvp(lambda o: grad(out_loss)(o, yb), (out,), (jv,))[1]
            pull = vjp(f, self._params)[1]
            return pull(hu)[0]  # type: ignore[no-any-return]

        return problem.batch_sum(batch_gv)

    def __matmul__(self, vec: Tensor) -> Tensor:
        self._count_input(vec)
        rows, single = as_rows(vec, self._size)
        with torch.no_grad():
            out = torch.stack([join_flat(self._one(split_flat(r, self._params)), 0) for r in rows])
        return out[0] if single else out.T


class BlockOperator(_Counted):
    """A diagonal block ``H[I, I]`` of another operator (one layer's parameters).

    ``H[I, I] v = (H embed(v))[I]`` with ``embed`` placing ``v`` at the indices
    ``I = [start, stop)`` and zeros elsewhere. Products are counted on this operator and on
    the parent.
    """

    def __init__(self, parent: Any, start: int, stop: int) -> None:
        size = int(parent.shape[0])
        if not 0 <= start < stop <= size:
            raise ValueError(f"Bad block: expected 0 <= start < stop <= {size}, got "
                             f"[{start}, {stop}).")
        super().__init__(stop - start, parent.dtype, parent.device)
        self.parent = parent
        self.start = start
        self.stop = stop

    def __matmul__(self, vec: Tensor) -> Tensor:
        self._count_input(vec)
        full_shape = (int(self.parent.shape[0]), *tuple(vec.shape[1:]))
        full = torch.zeros(full_shape, dtype=vec.dtype, device=vec.device)
        full[self.start : self.stop] = vec
        out: Tensor = self.parent @ full
        return out[self.start : self.stop]


class DenseOperator(_Counted):
    """A dense symmetric matrix as an operator (tests, exact references)."""

    def __init__(self, matrix: Tensor) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"Shape mismatch: expected (P, P), got {tuple(matrix.shape)}.")
        super().__init__(int(matrix.shape[0]), matrix.dtype, matrix.device)
        self.matrix = matrix

    def __matmul__(self, vec: Tensor) -> Tensor:
        self._count_input(vec)
        return self.matrix @ vec
