"""Quadratic Bezier paths trained to minimise the mean loss along them.

``phi_c(t) = (1 - t)^2 a + 2 t (1 - t) c + t^2 b`` whose control point ``c`` minimises
the expected loss along the curve, ``E_{t ~ U(0, 1)} f(phi_c(t))``, by Adam steps on
stratified samples of ``t`` (Garipov et al. 2018, "Loss Surfaces, Mode Connectivity,
and Fast Ensembling of DNNs", section 3.2). The gradient is
``grad_c = E_t[2 t (1 - t) grad f(phi_c(t))]``; the samples of one step are one batch.
The trained curve's maximum is certified like every path's (:mod:`.profile`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .objective import Objective
from .profile import BezierCurve, LinearConfig, PathResult, certify_profiles, result_from

__all__ = ["BezierConfig", "bezier_path"]


@dataclass(frozen=True)
class BezierConfig:
    """Training of a quadratic Bezier curve (Garipov et al. 2018).

    Attributes:
        steps: Adam steps on the control point.
        lr: learning rate relative to the RMS per-coordinate distance of the endpoints.
        samples: ``t`` samples per step (Monte-Carlo estimate of the expected loss).
    """

    steps: int = 300
    lr: float = 0.05
    samples: int = 8

    def __post_init__(self) -> None:
        if self.steps < 0 or self.samples < 1 or not self.lr > 0:
            raise ValueError("Bezier: steps >= 0, samples >= 1 and lr > 0 are required.")


def bezier_path(
    obj: Objective,
    a: Tensor,
    b: Tensor,
    config: BezierConfig | None = None,
    profile: LinearConfig | None = None,
    *,
    seed: int = 0,
    target: float | None = None,
) -> PathResult:
    """Quadratic Bezier curve trained to minimise the mean loss along it.

    The control point starts at the midpoint; ``samples`` stratified draws of ``t`` per
    Adam step. Returns ``nodes = c`` with shape ``(1, P)``.
    """
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"Shape mismatch: expected two vectors of equal shape (P,), got "
            f"{tuple(a.shape)} and {tuple(b.shape)}."
        )
    cfg = config or BezierConfig()
    prof = profile or LinearConfig()
    c = 0.5 * (a + b)
    scale = (b - a).pow(2).mean().sqrt()
    grad_evals = 0
    if cfg.steps > 0 and bool(scale > 0):
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        m = torch.zeros_like(c)
        v = torch.zeros_like(c)
        beta1, beta2, eps = 0.9, 0.999, 1e-12
        base = torch.arange(cfg.samples, dtype=a.dtype) / cfg.samples
        for step in range(cfg.steps):
            u = torch.rand(cfg.samples, generator=gen, dtype=a.dtype)
            ts = (base + u / cfg.samples).to(a.device)  # stratified samples
            _, g = obj.values_and_grads(BezierCurve(a, c, b).points(ts))
            grad_evals += cfg.samples
            w = (2 * ts * (1 - ts)).unsqueeze(1)
            grad = (w * g).mean(dim=0)
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad * grad
            mh = m / (1 - beta1 ** (step + 1))
            vh = v / (1 - beta2 ** (step + 1))
            lr = cfg.lr * scale * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
            c = c - lr * mh / (vh.sqrt() + eps * scale)
    (cert,) = certify_profiles(obj, [BezierCurve(a, c, b)], prof, like=a, targets=[target])
    grad_evals += int(cert.ts.shape[0])
    return result_from("bezier", cert, 0, grad_evals, c.unsqueeze(0))
