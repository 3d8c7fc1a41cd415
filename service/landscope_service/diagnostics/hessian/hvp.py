"""Hessian-vector products of a :class:`~landscope_service.diagnostics.Problem`'s loss.

Four ways to compute ``H v`` for ``H = d^2 L / d theta^2`` of the full-data mean loss
``L(theta) = sum_b w_b L_b(theta)`` (``w_b = |b| / N``, see ``Problem.batches``):

``forward_over_reverse``
    ``jvp(grad(L_b), (theta,), (v,))``: one forward-mode sweep through the gradient
    (Pearlmutter 1994, "Fast exact multiplication by the Hessian"). Recomputes the forward
    and backward pass on every product.
``reverse_over_reverse``
    ``vjp(grad(L_b), theta)(v)``: reverse mode through the backward pass.
``double_backward``
    ``g = autograd.grad(L_b, theta, create_graph=True)`` once, then
    ``H v = autograd.grad(<g, v>, theta, retain_graph=True)`` for every product. When the
    data is one batch the gradient graph is built once and reused by every product, so a
    product costs one backward sweep through the gradient's graph; with several batches the
    graph of each batch is rebuilt per product (memory stays bounded by one batch).
``vmap_forward_over_reverse``
    ``vmap`` of the forward-over-reverse product over a block of vectors.

Blocks of vectors ``V`` of shape ``(P, k)`` are supported by every variant: the
``double_backward`` variant pushes a block through the retained graph with
``is_grads_batched=True`` (a vmapped backward), the vmapped variant maps the forward mode.

The cost of each variant per vector, relative to one gradient, single batch and several,
is measured by ``benchmarks/hessian_vs_anchors.py`` and recorded in
``benchmarks/results/hessian_vs_anchors.md`` (section "Cost of one product per vector"),
with the machine and load it ran under; the numbers are not copied here, where they
would go stale. ``"auto"`` picks ``double_backward``; that table is where to check that it
is still the cheapest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor
from torch.func import grad, jvp, vjp, vmap

from ..problem import Params, Problem

__all__ = [
    "HVP_VARIANTS",
    "HVPVariant",
    "as_rows",
    "gradient",
    "join_flat",
    "make_hvp",
    "resolve_variant",
    "split_flat",
]

HVPVariant = Literal[
    "auto",
    "double_backward",
    "forward_over_reverse",
    "reverse_over_reverse",
    "vmap_forward_over_reverse",
]
HVP_VARIANTS: tuple[str, ...] = (
    "auto",
    "double_backward",
    "forward_over_reverse",
    "reverse_over_reverse",
    "vmap_forward_over_reverse",
)

FlatHVP = Callable[[Tensor], Tensor]
"""``hvp(V) -> H V`` for ``V`` of shape ``(P,)`` or ``(P, k)`` (flat, in ``params`` order)."""


def resolve_variant(problem: Problem, variant: str) -> str:
    """Resolve ``"auto"`` to a concrete variant for this problem.

    Args:
        problem: the problem whose loss is differentiated.
        variant: one of :data:`HVP_VARIANTS`.

    Returns:
        ``"double_backward"`` (the cheapest per vector measured, whether the data is one
        batch, when the gradient graph is built once and reused, or several); a concrete
        variant is returned unchanged.

    Raises:
        ValueError: on an unknown variant name.
    """
    if variant not in HVP_VARIANTS:
        raise ValueError(f"Unknown HVP variant: expected one of {HVP_VARIANTS}, got {variant!r}.")
    if variant != "auto":
        return variant
    return "double_backward"


def split_flat(vec: Tensor, like: Params) -> Params:
    """Split ``(P,)`` or ``(k, P)`` into tensors shaped like ``like`` (leading dim kept)."""
    out: Params = {}
    offset = 0
    lead = vec.shape[:-1]
    for name, p in like.items():
        n = int(p.numel())
        out[name] = vec[..., offset : offset + n].reshape(*lead, *p.shape)
        offset += n
    return out


def join_flat(tensors: Params | tuple[Tensor, ...] | list[Tensor], lead: int) -> Tensor:
    """Concatenate per-parameter tensors into ``(P,)`` (``lead=0``) or ``(k, P)``."""
    values = tensors.values() if isinstance(tensors, dict) else tensors
    if lead == 0:
        return torch.cat([t.reshape(-1) for t in values])
    return torch.cat([t.reshape(lead, -1) for t in values], dim=1)


def gradient(problem: Problem, params: Params | None = None) -> Tensor:
    """Flat gradient ``dL/dtheta`` of the full-data loss, accumulated over batches."""
    p = problem.params if params is None else params
    return problem.batch_sum(lambda xb, yb: join_flat(grad(problem.loss_fn)(p, xb, yb), 0))


def as_rows(vec: Tensor, num_params: int) -> tuple[Tensor, bool]:
    """Return ``(k, P)`` rows and whether the input was a single vector."""
    if vec.ndim == 1:
        if vec.shape[0] != num_params:
            raise ValueError(f"Shape mismatch: expected ({num_params},), got {tuple(vec.shape)}.")
        return vec.unsqueeze(0), True
    if vec.ndim == 2:
        if vec.shape[0] != num_params:
            raise ValueError(
                f"Shape mismatch: expected ({num_params}, k), got {tuple(vec.shape)}."
            )
        return vec.T, False
    raise ValueError(f"Shape mismatch: expected (P,) or (P, k), got {tuple(vec.shape)}.")


def _jvp_grad(problem: Problem, params: Params, v: Params, xb: Tensor, yb: Tensor) -> Params:
    """``jvp(grad(L_b), (params,), (v,))``: forward-over-reverse on one batch."""

    def loss_p(p: Params) -> Tensor:
        return problem.loss_fn(p, xb, yb)

    return jvp(grad(loss_p), (params,), (v,))[1]  # type: ignore[no-any-return]


def _fn_hvp_one(problem: Problem, params: Params, v: Params, mode: str) -> Params:
    """One product ``H v`` of the full-data loss with ``torch.func``."""

    def batch_hv(xb: Tensor, yb: Tensor) -> Params:
        if mode == "forward_over_reverse":
            return _jvp_grad(problem, params, v, xb, yb)

        def loss_b(p: Params) -> Tensor:
            return problem.loss_fn(p, xb, yb)

        return vjp(grad(loss_b), params)[1](v)[0]  # type: ignore[no-any-return]

    return problem.batch_sum(batch_hv)


class _DoubleBackward:
    """Double-backward products; reuses the gradient graph when the data is one batch."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.reuse = problem.num_batches == 1
        self._leaves: list[Tensor] | None = None
        self._grads: list[Tensor] | None = None

    def _graph(self, xb: Tensor, yb: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        names = list(self.problem.params)
        leaves = [self.problem.params[n].detach().requires_grad_(True) for n in names]
        with torch.enable_grad():
            loss = self.problem.loss_fn(dict(zip(names, leaves, strict=True)), xb, yb)
            grads = list(torch.autograd.grad(loss, leaves, create_graph=True))
        return leaves, grads

    def _apply(self, leaves: list[Tensor], grads: list[Tensor], rows: Tensor, retain: bool
               ) -> Tensor:
        k = rows.shape[0]
        like = dict(zip(self.problem.params, leaves, strict=True))
        parts = split_flat(rows, like)
        outs = [parts[n] for n in self.problem.params]
        with torch.enable_grad():
            if k == 1:
                res = torch.autograd.grad(
                    grads, leaves, grad_outputs=[o[0] for o in outs], retain_graph=retain,
                    allow_unused=True,
                )
                res = tuple(
                    torch.zeros_like(lf) if r is None else r
                    for r, lf in zip(res, leaves, strict=True)
                )
                return join_flat(list(res), 0).unsqueeze(0)
            res = torch.autograd.grad(
                grads, leaves, grad_outputs=outs, retain_graph=retain,
                is_grads_batched=True, allow_unused=True,
            )
            res = tuple(
                torch.zeros((k, *lf.shape), dtype=lf.dtype, device=lf.device) if r is None else r
                for r, lf in zip(res, leaves, strict=True)
            )
            return join_flat(list(res), k)

    def __call__(self, rows: Tensor) -> Tensor:
        if self.reuse:
            if self._leaves is None or self._grads is None:
                xb, yb, _ = next(iter(self.problem.batches()))
                self._leaves, self._grads = self._graph(xb, yb)
            return self._apply(self._leaves, self._grads, rows, retain=True)

        def batch_rows(xb: Tensor, yb: Tensor) -> Tensor:
            leaves, grads = self._graph(xb, yb)
            return self._apply(leaves, grads, rows, retain=False)

        return self.problem.batch_sum(batch_rows)


def make_hvp(problem: Problem, variant: str = "auto", block_size: int = 8) -> FlatHVP:
    """Build a flat Hessian-vector product ``V -> H V`` of the full-data loss.

    ``H = sum_b w_b d^2 L_b / d theta^2`` is accumulated batch by batch, so memory is
    bounded by one batch. The returned function accepts ``(P,)`` or ``(P, k)`` and returns
    the same shape, on the parameters' device and dtype.

    Args:
        problem: the problem (its ``params`` are the expansion point).
        variant: one of :data:`HVP_VARIANTS` (see the module docstring).
        block_size: vectors per vmapped chunk for blocks ``(P, k)``.

    Returns:
        The product function.

    Raises:
        ValueError: on an unknown variant or a bad ``block_size``.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}.")
    mode = resolve_variant(problem, variant)
    params = {k: t.detach() for k, t in problem.params.items()}
    num_params = problem.num_params

    if mode == "double_backward":
        engine = _DoubleBackward(problem)

        # On CPU a batched (vmapped) backward costs more per vector than one vector at a
        # time (benchmarks/results/hessian_vs_anchors.md); on accelerators batching pays.
        chunk = block_size if problem.device.type != "cpu" else 1

        def rows_fn(rows: Tensor) -> Tensor:
            return torch.cat([engine(rows[i : i + chunk])
                              for i in range(0, rows.shape[0], chunk)])

    elif mode == "vmap_forward_over_reverse":

        def one(v_flat: Tensor) -> Tensor:
            return join_flat(_fn_hvp_one(problem, params, split_flat(v_flat, params),
                                     "forward_over_reverse"), 0)

        def rows_fn(rows: Tensor) -> Tensor:
            if rows.shape[0] == 1:
                return one(rows[0]).unsqueeze(0)
            return torch.cat([vmap(one)(rows[i : i + block_size])
                              for i in range(0, rows.shape[0], block_size)])

    else:

        def rows_fn(rows: Tensor) -> Tensor:
            return torch.stack([
                join_flat(_fn_hvp_one(problem, params, split_flat(r, params), mode), 0)
                for r in rows
            ])

    def hvp(vec: Tensor) -> Tensor:
        rows, single = as_rows(vec, num_params)
        with torch.no_grad() if mode != "double_backward" else torch.enable_grad():
            out = rows_fn(rows.to(device=problem.device, dtype=problem.dtype))
        out = out.detach()
        return out[0] if single else out.T

    return hvp
