"""Data-parallel losses, gradients and Hessian products: shards whose partial sums add.

The full-data mean loss is ``L = sum_b (|b| / N) L_b`` over the batches ``b`` of
:meth:`Problem.batches`, so its gradient and its Hessian-vector products are the same
sums of per-batch terms. The batches are cut into ``k`` contiguous shards (on batch
boundaries); shard ``s`` computes ``sum_{b in s} (|b| / N) f_b`` (the global ``N``), and
the parent adds the ``k`` partial sums. The result is the unsharded one up to the order
of the floating-point additions.

The shards run through an :class:`~landscope_service.diagnostics.executor.Executor`: in
this process with :class:`LocalExecutor`, or as pieces on other workers with the
service's fan-out executor, whose helpers build the same problem from the job request.
Only vectors and partial sums travel; an iterative method (Lanczos, Hutchinson) keeps
its own vectors on the parent and sees :class:`ShardedHessianOperator` as any other
operator.

The job option ``parallel: {"shards": k}`` of ``evaluate`` and ``hessian_spectrum``
(iterative mode) uses it; the result's ``parallel`` block says where each shard ran.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.func import grad

from .executor import Executor
from .hessian.hvp import join_flat, resolve_variant, split_flat
from .hessian.operators import HessianOperator
from .monitor import Cancelled, Monitor
from .problem import Params, Problem
from .streaming import StreamingProblem

__all__ = [
    "ShardView",
    "ShardedHessianOperator",
    "resolve_shards",
    "shard_bounds",
    "shard_hvp",
    "shard_loss_grad",
    "sharded_evaluate",
    "sharded_loss_grad",
]


def shard_bounds(problem: Problem, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous sample ranges on the problem's batch boundaries.

    Raises:
        ValueError: ``shards < 1``.
    """
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}.")
    n, nb = problem.num_samples, problem.num_batches
    bs = -(-n // nb)
    k = min(shards, nb)
    cuts = [round(i * nb / k) for i in range(k + 1)]
    return [(cuts[i] * bs, min(cuts[i + 1] * bs, n)) for i in range(k)]


def _read(problem: Problem, start: int, stop: int) -> tuple[Tensor, Tensor]:
    if isinstance(problem, StreamingProblem) and problem.source is not None:
        return problem.source.read(start, stop, device=problem.device, dtype=problem.dtype)
    return problem.x[start:stop], problem.y[start:stop]


@dataclass
class ShardView(Problem):
    """The batches of ``parent`` in samples ``[start, stop)``, each weighted by
    ``|b| / N`` with the parent's ``N``: a shard's ``batch_sum`` is its partial sum."""

    parent: Problem | None = field(default=None, repr=False)
    start: int = 0
    stop: int = 0

    @classmethod
    def of(cls, parent: Problem, start: int, stop: int) -> ShardView:
        if not 0 <= start < stop <= parent.num_samples:
            raise ValueError(f"Shard [{start}, {stop}) is not inside [0, {parent.num_samples}).")
        return cls(model=parent.model, params=parent.params, x=parent.x, y=parent.y,
                   loss=parent.loss, batch_size=parent.batch_size, buffers=parent.buffers,
                   parent=parent, start=start, stop=stop)

    @property
    def num_batches(self) -> int:
        return -(-(self.stop - self.start) // self._batch_len())

    def batches(self) -> Iterator[tuple[Tensor, Tensor, float]]:
        if self.parent is None:
            raise TypeError("A ShardView needs its parent problem.")
        n, bs = self.num_samples, self._batch_len()
        for s in range(self.start, self.stop, bs):
            e = min(s + bs, self.stop)
            xb, yb = _read(self.parent, s, e)
            yield xb, yb, (e - s) / n


def _where() -> str:
    return f"{platform.node()}:{os.getpid()}"


def _params_from(payload: dict[str, Any], like: Params) -> Params:
    if "params" not in payload:
        return like
    return split_flat(payload["params"].to(device=next(iter(like.values())).device),
                      like)


def shard_loss_grad(problem: Problem, payload: dict[str, Any],
                    monitor: Monitor) -> dict[str, Any]:
    """Piece: the shard's partial loss and flat gradient at ``payload["params"]`` (flat;
    the problem's own parameters if absent)."""
    view = ShardView.of(problem, int(payload["start"]), int(payload["stop"]))
    params = _params_from(payload, problem.params)
    loss = torch.zeros((), dtype=problem.dtype, device=problem.device)
    lo = torch.full((), math.inf, dtype=problem.dtype, device=problem.device)
    hi = torch.full((), -math.inf, dtype=problem.dtype, device=problem.device)
    g = torch.zeros(problem.num_params, dtype=problem.dtype, device=problem.device)
    for xb, yb, w in view.batches():
        monitor.check()
        with torch.no_grad():
            per = problem.per_sample_loss(params, xb, yb)
        loss = loss + w * per.mean()
        lo, hi = torch.minimum(lo, per.min()), torch.maximum(hi, per.max())
        g = g + w * join_flat(grad(problem.loss_fn)(params, xb, yb), 0)
    return {"loss": loss, "grad": g, "min": lo, "max": hi, "ran_on": _where()}


def shard_hvp(problem: Problem, payload: dict[str, Any], monitor: Monitor) -> dict[str, Any]:
    """Piece: the shard's partial ``H V`` for the block ``payload["V"]`` ``(P, k)``."""
    view = ShardView.of(problem, int(payload["start"]), int(payload["stop"]))
    monitor.check()
    op = HessianOperator(view, str(payload.get("variant", "auto")))
    return {"HV": op @ payload["V"], "ran_on": _where()}


def _quiet(monitor: Monitor) -> Monitor:
    """The parent's cancellation without its progress: one product's pieces must not move
    the job's progress bar."""

    def cancelled() -> bool:
        try:
            monitor.check()
        except Cancelled:
            return True
        return False

    return Monitor(should_cancel=cancelled, min_interval=0.0)


def resolve_shards(shards: int, executor: Executor, problem: Problem) -> int:
    """The ``parallel.shards`` option: 0 (auto) is one shard per slot of the executor
    (its ``width`` helpers plus the parent; 1 in-process), at most one per batch."""
    if shards == 0:
        shards = int(getattr(executor, "width", 0)) + 1
    return max(1, min(shards, problem.num_batches))


def sharded_evaluate(problem: Problem, executor: Executor, shards: int, *,
                     monitor: Monitor | None = None) -> dict[str, Any]:
    """Loss, gradient norm and per-sample loss range from ``shards`` partial sums."""
    monitor = monitor or Monitor()
    payloads = [{"start": a, "stop": b} for a, b in shard_bounds(problem, shards)]
    parts = executor.map(shard_loss_grad, problem, payloads, _quiet(monitor))
    loss = sum((r["loss"] for r in parts[1:]), parts[0]["loss"])
    g = sum((r["grad"] for r in parts[1:]), parts[0]["grad"])
    return {"loss": float(loss), "grad_norm": float(torch.linalg.vector_norm(g.double())),
            "min": min(float(r["min"]) for r in parts),
            "max": max(float(r["max"]) for r in parts),
            "shards": [{"samples": [p["start"], p["stop"]], "ran_on": str(r["ran_on"])}
                       for p, r in zip(payloads, parts, strict=True)]}


def sharded_loss_grad(problem: Problem, executor: Executor, shards: int, *,
                      params: Params | None = None,
                      monitor: Monitor | None = None) -> tuple[Tensor, Tensor, list[str]]:
    """Full-data loss and flat gradient as the sum of ``shards`` partial sums.

    Returns:
        ``(loss, gradient, where each shard ran)``.
    """
    monitor = monitor or Monitor()
    payloads: list[dict[str, Any]] = [{"start": a, "stop": b}
                                      for a, b in shard_bounds(problem, shards)]
    if params is not None:
        flat = join_flat(params, 0).detach()
        payloads = [{**p, "params": flat} for p in payloads]
    parts = executor.map(shard_loss_grad, problem, payloads, _quiet(monitor))
    loss = sum((r["loss"] for r in parts[1:]), parts[0]["loss"])
    g = sum((r["grad"] for r in parts[1:]), parts[0]["grad"])
    return loss, g, [str(r["ran_on"]) for r in parts]


@dataclass
class ShardedHessianOperator:
    """``H`` of the full-data loss at ``problem.params``, each product the sum of the
    shards' partial products (a :class:`~.hessian.operators.CurvatureOperator`).

    Attributes:
        bounds: the shards' sample ranges.
        ran_on: per shard, where its last product ran.
    """

    problem: Problem
    executor: Executor
    shards: int
    variant: str = "auto"
    monitor: Monitor = field(default_factory=Monitor)
    ran_on: list[str] = field(default_factory=list)
    _products: int = 0

    def __post_init__(self) -> None:
        self.bounds = shard_bounds(self.problem, self.shards)
        # once, on the parent: "auto" times the variants, which no shard should repeat
        self.variant = resolve_variant(self.problem, self.variant)

    @property
    def shape(self) -> tuple[int, int]:
        p = self.problem.num_params
        return (p, p)

    @property
    def dtype(self) -> torch.dtype:
        return self.problem.dtype

    @property
    def device(self) -> torch.device:
        return self.problem.device

    @property
    def num_products(self) -> int:
        return self._products

    def __matmul__(self, vec: Tensor) -> Tensor:
        p = self.problem.num_params
        if vec.ndim not in (1, 2) or vec.shape[0] != p:
            raise ValueError(f"Shape mismatch: expected ({p},) or ({p}, k), got "
                             f"{tuple(vec.shape)}.")
        block = vec.reshape(p, -1)
        self._products += int(block.shape[1])
        payloads = [{"start": a, "stop": b, "variant": self.variant, "V": block.detach()}
                    for a, b in self.bounds]
        parts = self.executor.map(shard_hvp, self.problem, payloads, _quiet(self.monitor))
        self.ran_on = [str(r["ran_on"]) for r in parts]
        total = sum((r["HV"] for r in parts[1:]), parts[0]["HV"])
        return total.reshape(vec.shape)  # type: ignore[no-any-return]
