"""A differentiable function of one flat parameter vector, with evaluation counters.

Every path finder of this package works on an :class:`Objective`: a scalar function
``f: R^P -> R`` of a flat vector. Networks enter through :func:`problem_objective`
(which unflattens the vector into the problem's parameter dict and evaluates the full
data loss); analytic test functions (Müller-Brown, Himmelblau) enter directly, so both
run through the same code.

Evaluations are counted (``num_loss_evals``, ``num_grad_evals``) so that budgets and
benchmarks can compare path finders by work done rather than by wall time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from ..problem import Problem, flatten, loss_value, unflatten

__all__ = ["Objective", "flat_params", "has_batchnorm", "problem_objective"]

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class Objective:
    """A scalar function of a flat vector with batched values and gradients.

    Args:
        fn: ``fn(theta) -> scalar tensor`` for ``theta`` of shape ``(P,)``;
            differentiable with autograd.
        vectorize: if True, batches are evaluated with :func:`torch.func.vmap`
            (``fn`` must then be a pure function, free of in-place state updates);
            otherwise one point after the other.

    Attributes:
        num_loss_evals: number of points at which the value alone was computed.
        num_grad_evals: number of points at which value and gradient were computed.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], *, vectorize: bool = True) -> None:
        self.fn = fn
        self.vectorize = vectorize
        self.num_loss_evals = 0
        self.num_grad_evals = 0
        self._vvalue = vmap(fn) if vectorize else None

    def value(self, theta: Tensor) -> Tensor:
        """``f(theta)`` as a 0-d tensor (no graph kept)."""
        if theta.ndim != 1:
            raise ValueError(f"Shape mismatch: expected (P,), got {tuple(theta.shape)}.")
        self.num_loss_evals += 1
        with torch.no_grad():
            return self.fn(theta)

    def values(self, thetas: Tensor) -> Tensor:
        """``f`` at every row of ``thetas`` (shape ``(K, P)``), returned as ``(K,)``."""
        if thetas.ndim != 2:
            raise ValueError(f"Shape mismatch: expected (K, P), got {tuple(thetas.shape)}.")
        self.num_loss_evals += int(thetas.shape[0])
        with torch.no_grad():
            if self._vvalue is not None:
                return self._vvalue(thetas)
            return torch.stack([self.fn(t) for t in thetas])

    def values_and_grads(self, thetas: Tensor) -> tuple[Tensor, Tensor]:
        """Values ``(K,)`` and gradients ``(K, P)`` of ``f`` at every row of ``thetas``."""
        if thetas.ndim != 2:
            raise ValueError(f"Shape mismatch: expected (K, P), got {tuple(thetas.shape)}.")
        self.num_grad_evals += int(thetas.shape[0])
        if self._vvalue is not None:
            # Reverse mode through the batched forward: the rows are independent, so the
            # gradient of the sum is every row's gradient (3x faster than
            # vmap(grad_and_value(fn)) on small functions, the same values).
            x = thetas.detach().requires_grad_(True)
            with torch.enable_grad():
                v = self._vvalue(x)
                (g,) = torch.autograd.grad(v.sum(), x)
            return v.detach(), g.detach()
        vals: list[Tensor] = []
        grads: list[Tensor] = []
        for t in thetas:
            x = t.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                val = self.fn(x)
                (g,) = torch.autograd.grad(val, x)
            vals.append(val.detach())
            grads.append(g)
        return torch.stack(vals), torch.stack(grads)

    def value_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Value (0-d) and gradient ``(P,)`` at one point."""
        v, g = self.values_and_grads(theta.reshape(1, -1))
        return v[0], g[0]


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` contains a batch-norm module."""
    return any(isinstance(m, _BN_TYPES) for m in model.modules())


def _bn_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _BN_TYPES)]


def _fresh_buffers(model: nn.Module, problem: Problem) -> dict[str, Tensor]:
    bufs = {k: v.detach().clone() for k, v in model.named_buffers()}
    bufs.update({k: v.detach().clone() for k, v in problem.buffers.items()})
    return {k: v.to(device=problem.device) for k, v in bufs.items()}


def problem_objective(problem: Problem) -> Objective:
    """The full-data loss of ``problem`` as a function of the flat parameter vector.

    ``f(theta) = L(unflatten(theta)) = sum_b (|B_b| / N) * loss(H(x_b; theta), y_b)``,
    with the parameter order of ``problem.params`` (see :func:`flatten`).

    Batch norm: the statistics are recomputed at every point ``theta`` on the full,
    fixed data set, so that the loss along a path is the loss of a network whose
    batch-norm layers are consistent with its weights (the stored running statistics of
    the endpoints would be wrong in between; Garipov et al. 2018, section 4, and
    Draxler et al. 2018 do the same). Two cases:

    * one batch (``problem.batch_size`` is None or >= N): the model is evaluated in
      training mode, so every batch-norm layer normalises with the mean and (biased)
      variance of the whole data set at ``theta``; the loss is exact and its gradient
      includes the dependence of the statistics on ``theta``.
    * several batches: a first pass in training mode with ``momentum=None``
      accumulates the cumulative average of the per-batch statistics (no gradient);
      a second pass in evaluation mode computes the loss with them. The gradient then
      treats the statistics as constants (an approximation used only to move images;
      the barrier values themselves are exact evaluations).

    Models without batch norm are evaluated as they are and vectorised with vmap.
    """
    like = {k: v.detach() for k, v in problem.params.items()}
    model = problem.model
    bns = _bn_modules(model)
    if not bns:

        def fn(theta: Tensor) -> Tensor:
            return problem.full_loss(unflatten(theta, like))

        return Objective(fn, vectorize=True)

    single_batch = problem.num_batches == 1
    bn_names = {n for n, _ in bns}

    if single_batch:

        def fn_bn(theta: Tensor) -> Tensor:
            was = model.training
            model.train()
            try:
                # Fresh copies so that the in-place running-stat updates of training
                # mode never touch the problem's buffers.
                bufs = _fresh_buffers(model, problem)
                out = functional_call(model, (unflatten(theta, like), bufs), (problem.x,))
                return loss_value(problem.loss, out, problem.y)
            finally:
                model.train(was)

        return Objective(fn_bn, vectorize=False)

    def fn_bn_batched(theta: Tensor) -> Tensor:
        params = unflatten(theta, like)
        bufs = _fresh_buffers(model, problem)
        for name in bn_names:
            prefix = f"{name}." if name else ""
            for key in ("running_mean", "running_var", "num_batches_tracked"):
                full = prefix + key
                if full in bufs:
                    bufs[full] = torch.zeros_like(bufs[full])
            if prefix + "running_var" in bufs:
                bufs[prefix + "running_var"] = torch.ones_like(bufs[prefix + "running_var"])
        saved = {name: m.momentum for name, m in bns}
        was = model.training
        try:
            model.train()
            for _, m in bns:
                m.momentum = None  # type: ignore[assignment]  # cumulative average
            with torch.no_grad():
                for xb, _, _ in problem.batches():
                    functional_call(model, (params, bufs), (xb,))
            model.eval()
            return problem.batch_sum(
                lambda xb, yb: loss_value(
                    problem.loss, functional_call(model, (params, bufs), (xb,)), yb
                )
            )
        finally:
            for name, m in bns:
                m.momentum = saved[name]
            model.train(was)

    return Objective(fn_bn_batched, vectorize=False)


def flat_params(problem: Problem) -> Tensor:
    """The problem's parameters as one flat vector (detached)."""
    return flatten({k: v.detach() for k, v in problem.params.items()})
