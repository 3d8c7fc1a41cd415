"""The object every diagnostic works on: a model, its parameters, a data set and a loss.

Parameters stay a ``dict[str, Tensor]`` and the model is evaluated with
:func:`torch.func.functional_call`; flattening happens only at the edges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, cast, overload

import torch
from torch import Tensor, nn
from torch.func import functional_call

LossName = Literal["mse", "cross_entropy"]
Params = dict[str, Tensor]

__all__ = ["LossName", "Params", "Problem", "flatten", "loss_value", "unflatten"]


def loss_value(loss: LossName, out: Tensor, y: Tensor) -> Tensor:
    """Mean-reduced loss, as PyTorch's ``mse_loss`` / ``cross_entropy`` compute it.

    The squared error is written out, ``((out - y)**2).mean()``, equal to
    ``F.mse_loss(out, y)``: in torch 2.13 forward-over-reverse differentiation through
    ``F.mse_loss`` fails ("ZeroTensors are immutable") when ``y`` carries no tangent.
    """
    if loss == "mse":
        if out.shape != y.shape:
            raise ValueError(
                f"Shape mismatch: the output has shape {tuple(out.shape)}, the targets "
                f"{tuple(y.shape)}."
            )
        return ((out - y) ** 2).mean()
    if loss == "cross_entropy":
        return torch.nn.functional.cross_entropy(out, y, reduction="mean")
    raise ValueError(f"Unknown loss: expected 'mse' or 'cross_entropy', got {loss!r}.")



def _per_sample_loss(loss: LossName, out: Tensor, y: Tensor) -> Tensor:
    if loss == "mse":
        return ((out - y) ** 2).reshape(out.shape[0], -1).mean(dim=1)
    if loss == "cross_entropy":
        return torch.nn.functional.cross_entropy(out, y, reduction="none")
    raise ValueError(f"Unknown loss: expected 'mse' or 'cross_entropy', got {loss!r}.")


@dataclass
class Problem:
    """A model, its parameters, a full data set and a mean-reduced loss.

    ``L(theta) = N^-1 sum_mu l(H(x_mu; theta), y_mu)`` with ``l`` the squared error
    averaged over outputs (PyTorch's ``mse_loss``, mean reduction) or cross-entropy.

    Args:
        model: the network; only its structure is used, parameters come from ``params``.
        params: parameter tensors by name (``0.weight``, ``0.bias``, ...).
        x: inputs, shape ``(N, ...)``.
        y: targets, ``(N, r)`` floats for mse, ``(N,)`` integer classes for cross_entropy.
        loss: ``"mse"`` or ``"cross_entropy"``.
        batch_size: products and losses are accumulated over batches of this many samples,
            so memory is bounded by the batch, not by N. ``None`` means the full data set.
        buffers: non-trainable tensors of the model (batch-norm statistics).

    Raises:
        ValueError: if the data set is empty (checked here, once: every batch loop of the
            core may assume at least one batch), if ``x`` and ``y`` disagree on the number
            of samples, or if ``batch_size < 1``.
    """

    model: nn.Module
    params: Params
    x: Tensor
    y: Tensor
    loss: LossName = "mse"
    batch_size: int | None = None
    buffers: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.x.ndim == 0 or self.x.shape[0] == 0:
            raise ValueError(
                "The data set is empty: x must have shape (N, ...) with N >= 1 samples; "
                "send at least one sample."
            )
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"Shape mismatch: x has {self.x.shape[0]} samples, y has {self.y.shape[0]}."
            )
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}.")

    # ------------------------------------------------------------------ properties
    @property
    def num_samples(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_params(self) -> int:
        return sum(int(p.numel()) for p in self.params.values())

    @property
    def num_batches(self) -> int:
        """Number of batches :meth:`batches` yields (at least 1)."""
        return -(-self.num_samples // self._batch_len())

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.params.values())).dtype

    def _batch_len(self) -> int:
        n = self.num_samples
        return n if self.batch_size is None else min(self.batch_size, n)

    # ------------------------------------------------------------------ evaluation
    def forward(self, params: Params, x: Tensor) -> Tensor:
        """Network output ``H(x; params)``."""
        return functional_call(self.model, (params, self.buffers), (x,))  # type: ignore[no-any-return]

    def loss_fn(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        """Mean loss of ``params`` on the batch ``(x, y)``."""
        return loss_value(self.loss, self.forward(params, x), y)

    def per_sample_loss(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        return _per_sample_loss(self.loss, self.forward(params, x), y)

    def batches(self) -> Iterator[tuple[Tensor, Tensor, float]]:
        """Yield ``(x_b, y_b, weight)`` with ``weight = len(x_b) / N``.

        The full-data mean loss is ``sum_b weight_b * loss_fn(params, x_b, y_b)``.
        """
        n = self.num_samples
        bs = self._batch_len()
        for start in range(0, n, bs):
            xb = self.x[start : start + bs]
            yb = self.y[start : start + bs]
            yield xb, yb, xb.shape[0] / n

    @overload
    def batch_sum(self, fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor: ...

    @overload
    def batch_sum(self, fn: Callable[[Tensor, Tensor], Params]) -> Params: ...

    def batch_sum(
        self, fn: Callable[[Tensor, Tensor], Tensor] | Callable[[Tensor, Tensor], Params]
    ) -> Tensor | Params:
        """The batch-weighted sum ``sum_b w_b fn(x_b, y_b)`` over :meth:`batches`.

        With ``fn`` a batch's mean loss, or its gradient or Hessian-vector product, this is
        the same quantity of the full-data mean loss (``w_b = |b| / N``), with memory
        bounded by one batch. The data set is never empty (see the class), so there is
        always a first term.

        Args:
            fn: ``(x_b, y_b) -> value``, a tensor or a dict of tensors (same keys and
                shapes for every batch).

        Returns:
            A tensor, or a dict with ``fn``'s keys.
        """
        batches = self.batches()
        xb, yb, w = next(batches)
        first = fn(xb, yb)
        if isinstance(first, dict):
            acc = {k: t * w for k, t in first.items()}
            for xb, yb, w in batches:
                term = cast(Params, fn(xb, yb))
                acc = {k: acc[k] + t * w for k, t in term.items()}
            return acc
        total = first * w
        for xb, yb, w in batches:
            total = total + cast(Tensor, fn(xb, yb)) * w
        return total

    def full_loss(self, params: Params | None = None) -> Tensor:
        """Full-data mean loss, accumulated over batches (differentiable)."""
        p = self.params if params is None else params
        return self.batch_sum(lambda xb, yb: self.loss_fn(p, xb, yb))


def flatten(params: Params) -> Tensor:
    """Concatenate the parameters into one vector (in the dict's order)."""
    return torch.cat([p.reshape(-1) for p in params.values()])


def unflatten(vector: Tensor, like: Params) -> Params:
    """Split a flat vector into tensors shaped like ``like`` (inverse of :func:`flatten`)."""
    total = sum(int(p.numel()) for p in like.values())
    if vector.ndim != 1 or vector.shape[0] != total:
        raise ValueError(f"Shape mismatch: expected ({total},), got {tuple(vector.shape)}.")
    out: Params = {}
    offset = 0
    for name, p in like.items():
        n = int(p.numel())
        out[name] = vector[offset : offset + n].view_as(p)
        offset += n
    return out
