"""Trace estimators with standard errors and confidence intervals.

``hutchinson``
    ``tr(A) ~= n^-1 sum_i g_i^T A g_i`` with Rademacher ``g_i`` (Hutchinson 1990); its
    variance is ``2 (||A||_F^2 - sum_i A_ii^2) / n``.
``hutchpp``
    Hutch++ (Meyer, Musco, Musco & Woodruff 2021, "Hutch++: optimal stochastic trace
    estimation", Algorithm 1): a third of the products sketch the dominant range
    ``Q = orth(A S)``, a third compute ``tr(Q^T A Q)`` exactly, a third estimate the rest
    ``tr((I - QQ^T) A (I - QQ^T))`` by Hutchinson. Its error falls like ``1/n`` instead of
    ``1/sqrt(n)`` when the spectrum decays.
``deflated``
    The same split with ``Q`` the Ritz vectors a Lanczos run already found: since
    ``Q^T A Q = diag(theta)`` exactly for Ritz vectors, ``tr(A) = sum theta +
    tr((I - QQ^T) A (I - QQ^T))`` and every probe's ``A g`` gives an unbiased sample of the
    second term without another product (:func:`deflated_sample`).

Every estimate carries ``std_error`` (sample standard deviation of the stochastic part over
``sqrt(n)``) and a 95% Student-t confidence interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from ..monitor import Monitor
from ..output import json_float
from .krylov import rademacher
from .operators import CurvatureOperator

__all__ = [
    "TraceEstimate",
    "deflated_sample",
    "exact_trace",
    "hutchinson",
    "hutchpp",
    "summarize_samples",
]


@dataclass(frozen=True)
class TraceEstimate:
    """A trace estimate.

    Attributes:
        estimate: the estimate of ``tr(A)``.
        std_error: its standard error (0 for exact values).
        ci95: 95% confidence interval ``(low, high)``.
        num_probes: stochastic probes used.
        num_products: products spent (0 when reused from other runs).
        method: ``"hutchinson"``, ``"hutchpp"``, ``"deflated"`` or ``"exact"``.
        deflation_rank: dimension of the exactly treated subspace.
    """

    estimate: float
    std_error: float
    ci95: tuple[float, float]
    num_probes: int
    num_products: int
    method: str
    deflation_rank: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "estimate": json_float(self.estimate),
            "std_error": json_float(self.std_error),
            "ci95": [json_float(self.ci95[0]), json_float(self.ci95[1])],
            "num_probes": self.num_probes,
            "num_products": self.num_products,
            "method": self.method,
            "deflation_rank": self.deflation_rank,
        }


def summarize_samples(
    samples: np.ndarray, offset: float, *, method: str, num_products: int, deflation_rank: int = 0
) -> TraceEstimate:
    """Mean, standard error and 95% t-interval of ``offset + mean(samples)``."""
    n = int(samples.size)
    if n == 0:
        raise ValueError("Need at least one sample, got 0.")
    mean = float(np.mean(samples)) + offset
    if n == 1:
        return TraceEstimate(mean, math.inf, (-math.inf, math.inf), 1, num_products, method,
                             deflation_rank)
    se = float(np.std(samples, ddof=1) / math.sqrt(n))
    q = float(stats.t.ppf(0.975, n - 1))
    return TraceEstimate(mean, se, (mean - q * se, mean + q * se), n, num_products, method,
                         deflation_rank)


def deflated_sample(
    g: Tensor, ag: Tensor, q: Tensor | None, theta: Tensor | None
) -> tuple[float, float]:
    """Plain and deflated Hutchinson samples from one probe ``g`` and its product ``A g``.

    ``g^T A g`` and ``g^T (I-QQ^T) A (I-QQ^T) g = g^T A g - 2 c^T (Q^T A g) + c^T Theta c``
    with ``c = Q^T g``, valid when ``Q^T A Q = diag(theta)`` (Ritz vectors). ``g`` must be
    independent of ``Q``.

    Returns:
        ``(plain, deflated)`` as Python floats.
    """
    plain = g @ ag
    if q is None or theta is None or q.shape[1] == 0:
        return float(plain), float(plain)
    c = q.T @ g
    d = plain - 2 * (c @ (q.T @ ag)) + (c * theta.to(c.dtype) * c).sum()
    return float(plain), float(d)


def hutchinson(
    op: CurvatureOperator, num_probes: int, *, seed: int = 0, monitor: Monitor | None = None
) -> TraceEstimate:
    """Hutchinson's estimator with ``num_probes`` Rademacher probes.

    Raises:
        ValueError: if ``num_probes < 1``.
    """
    if num_probes < 1:
        raise ValueError(f"num_probes must be >= 1, got {num_probes}.")
    monitor = monitor or Monitor()
    p = int(op.shape[0])
    vals = []
    for i in range(num_probes):
        monitor.check()
        g = rademacher(p, seed + i, dtype=op.dtype, device=op.device)
        vals.append(g @ (op @ g))
        monitor.report("trace", (i + 1) / num_probes, f"{i + 1}/{num_probes} probes")
    samples = torch.stack(vals).to(torch.float64).cpu().numpy()
    return summarize_samples(samples, 0.0, method="hutchinson", num_products=num_probes)


def hutchpp(
    op: CurvatureOperator, num_products: int, *, seed: int = 0, monitor: Monitor | None = None
) -> TraceEstimate:
    """Hutch++ with a budget of ``num_products`` products (a multiple of 3 is used).

    ``k = num_products // 3``: ``S`` has ``k`` Rademacher columns, ``Q = orth(A S)``,
    ``tr(Q^T A Q)`` costs ``k`` products and ``k`` Rademacher probes estimate the deflated
    remainder, projected with ``I - QQ^T``.

    Raises:
        ValueError: if ``num_products < 6`` (two remainder probes are needed for an error).
    """
    if num_products < 6:
        raise ValueError(f"hutchpp needs num_products >= 6, got {num_products}.")
    monitor = monitor or Monitor()
    p = int(op.shape[0])
    k = num_products // 3
    s = torch.stack([rademacher(p, seed + i, dtype=op.dtype, device=op.device)
                     for i in range(k)], dim=1)
    monitor.check()
    q, _ = torch.linalg.qr(op @ s)
    monitor.check()
    exact_part = torch.trace(q.T @ (op @ q))
    vals = []
    for i in range(k):
        monitor.check()
        g = rademacher(p, seed + 100_003 + i, dtype=op.dtype, device=op.device)
        g = g - q @ (q.T @ g)
        vals.append(g @ (op @ g))
        monitor.report("trace", (i + 1) / k, f"{i + 1}/{k} Hutch++ probes")
    samples = torch.stack(vals).to(torch.float64).cpu().numpy()
    return summarize_samples(samples, float(exact_part), method="hutchpp",
                             num_products=3 * k, deflation_rank=int(q.shape[1]))


def exact_trace(op: CurvatureOperator, *, block: int = 64, monitor: Monitor | None = None
                ) -> TraceEstimate:
    """``sum_i e_i^T A e_i`` with ``P`` products (blocks of unit vectors)."""
    monitor = monitor or Monitor()
    p = int(op.shape[0])
    total = torch.zeros((), dtype=torch.float64, device=op.device)
    for start in range(0, p, block):
        monitor.check()
        stop = min(p, start + block)
        e = torch.zeros((p, stop - start), dtype=op.dtype, device=op.device)
        idx = torch.arange(start, stop, device=op.device)
        e[idx, idx - start] = 1
        total = total + torch.diagonal((op @ e)[start:stop]).sum().to(torch.float64)
        monitor.report("trace", stop / p, f"{stop}/{p} unit vectors")
    val = float(total)
    return TraceEstimate(val, 0.0, (val, val), 0, p, "exact")
