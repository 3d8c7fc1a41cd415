"""Minima to connect: initialisation from a seed and full-batch training.

Each trained minimum starts from PyTorch's default initialisation of its layers drawn
from its own seed (Linear/Conv weights and biases uniform on
``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, batch-norm scale 1 and shift 0, as
``nn.Linear.reset_parameters`` draws them) and is trained on the full, fixed data set
(deterministic full-batch steps), so that the same seed gives the same minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..monitor import Monitor
from ..problem import Params, Problem
from .objective import Objective

__all__ = ["Optimizer", "TrainedMinimum", "init_params", "minimize"]

Optimizer = Literal["adam", "sgd", "lbfgs"]


@dataclass
class TrainedMinimum:
    """A local minimum found by :func:`minimize`.

    Attributes:
        theta: the flat parameter vector.
        loss: ``f(theta)``.
        grad_norm: ``|grad f(theta)|``.
        num_grad_evals: gradient evaluations spent.
    """

    theta: Tensor
    loss: float
    grad_norm: float
    num_grad_evals: int


def init_params(problem: Problem, seed: int) -> Params:
    """Fresh parameters shaped like ``problem.params`` drawn from ``seed``.

    Weights of ``Linear``/``Conv`` layers and their biases are uniform on
    ``[-k, k]``, ``k = 1/sqrt(fan_in)``; batch-norm and layer-norm scales are 1 and
    shifts 0; any other tensor is standard normal times ``1/sqrt(numel)``.
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    modules = dict(problem.model.named_modules())
    out: Params = {}
    for name, p in problem.params.items():
        prefix, _, leaf = name.rpartition(".")
        mod = modules.get(prefix)
        if isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d | nn.LayerNorm):
            val = (
                torch.ones(p.shape, dtype=p.dtype)
                if leaf == "weight"
                else torch.zeros(p.shape, dtype=p.dtype)
            )
        elif mod is not None and hasattr(mod, "weight") and mod.weight is not None:
            w = problem.params.get(f"{prefix}.weight") if prefix else None
            shape = tuple(w.shape) if w is not None else tuple(p.shape)
            fan_in = int(math.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
            k = 1.0 / math.sqrt(max(fan_in, 1))
            val = (torch.rand(p.shape, generator=gen, dtype=p.dtype) * 2 - 1) * k
        else:
            val = torch.randn(p.shape, generator=gen, dtype=p.dtype) / math.sqrt(max(p.numel(), 1))
        out[name] = val.to(device=p.device)
    return out


def minimize(
    obj: Objective,
    theta0: Tensor,
    *,
    optimizer: Optimizer = "adam",
    steps: int = 1000,
    lr: float = 1e-2,
    momentum: float = 0.9,
    monitor: Monitor | None = None,
) -> TrainedMinimum:
    """Full-batch minimisation of ``obj`` from ``theta0``.

    Args:
        obj: the objective.
        theta0: starting point ``(P,)``.
        optimizer: ``"adam"`` (Kingma & Ba 2015), ``"sgd"`` (heavy ball with
            ``momentum``) or ``"lbfgs"`` (strong-Wolfe line search; ``steps`` outer
            iterations of at most 20 evaluations each).
        steps: optimiser steps.
        lr: learning rate.
        momentum: momentum of ``sgd``.
        monitor: progress within this minimisation and cancellation.

    Returns:
        The :class:`TrainedMinimum`.
    """
    if theta0.ndim != 1:
        raise ValueError(f"Shape mismatch: expected (P,), got {tuple(theta0.shape)}.")
    if steps < 0 or not lr > 0:
        raise ValueError(f"steps must be >= 0 and lr > 0, got steps={steps}, lr={lr}.")
    mon = monitor or Monitor()
    g0 = obj.num_grad_evals
    x = theta0.detach().clone().requires_grad_(True)
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam([x], lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD([x], lr=lr, momentum=momentum)
    elif optimizer == "lbfgs":
        opt = torch.optim.LBFGS(
            [x],
            lr=lr,
            max_iter=20,
            history_size=20,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-12,
            tolerance_change=1e-15,
        )
    else:
        raise ValueError(f"optimizer must be 'adam', 'sgd' or 'lbfgs', got {optimizer!r}.")

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=False)
        v, g = obj.value_and_grad(x.detach())
        x.grad = g.clone()
        return v

    report_every = max(1, steps // 50)
    for step in range(steps):
        opt.step(closure)  # type: ignore[arg-type]
        if step % report_every == 0:
            mon.check()
            mon.report("train", (step + 1) / steps, f"step {step + 1}/{steps}")
    theta = x.detach()
    v, g = obj.value_and_grad(theta)
    return TrainedMinimum(
        theta=theta,
        loss=float(v),
        grad_norm=float(g.norm()),
        num_grad_evals=obj.num_grad_evals - g0,
    )
