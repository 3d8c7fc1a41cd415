"""Exact mode: the dense Hessian and its full eigendecomposition for small models."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.func import jacrev

from ..monitor import Monitor
from ..problem import Problem, flatten, unflatten

__all__ = ["dense_hessian", "exact_spectrum"]


def dense_hessian(problem: Problem, *, chunk_size: int = 256, monitor: Monitor | None = None
                  ) -> Tensor:
    """The dense ``(P, P)`` Hessian of the full-data loss, ``sum_b w_b d^2 L_b``.

    Computed per batch with ``torch.func`` (reverse over reverse, ``chunk_size`` rows at a
    time, i.e. ``torch.func.hessian`` with bounded memory) and symmetrised.

    Raises:
        ValueError: if ``chunk_size < 1``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    monitor = monitor or Monitor()
    theta = flatten({k: v.detach() for k, v in problem.params.items()})
    total: Tensor | None = None
    batches = list(problem.batches())
    for i, (xb, yb, w) in enumerate(batches):
        monitor.check()

        def f(t: Tensor, xb: Tensor = xb, yb: Tensor = yb) -> Tensor:
            return problem.loss_fn(unflatten(t, problem.params), xb, yb)

        h = jacrev(jacrev(f), chunk_size=chunk_size)(theta) * w
        total = h if total is None else total + h
        monitor.report("dense_hessian", (i + 1) / len(batches), f"batch {i + 1}/{len(batches)}")
    if total is None:
        raise RuntimeError("The data set is empty.")
    return 0.5 * (total + total.T)


def exact_spectrum(hessian: Tensor) -> tuple[Tensor, Tensor]:
    """All eigenvalues (ascending, float64) and eigenvectors of a dense symmetric matrix."""
    if hessian.ndim != 2 or hessian.shape[0] != hessian.shape[1]:
        raise ValueError(f"Shape mismatch: expected (P, P), got {tuple(hessian.shape)}.")
    evals, evecs = torch.linalg.eigh(hessian.to(torch.float64))
    return evals, evecs
