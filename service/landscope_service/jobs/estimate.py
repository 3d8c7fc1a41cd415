"""Submit-time cost estimate of a job: products, memory and a time range.

The figures come from the core's cost model (:mod:`landscope_service.diagnostics.cost`,
plain Python) with the per-product rates this worker pool measured: every worker keeps
the seconds per product of its recent jobs and sends them in its heartbeat. Without a
measurement the model's documented defaults are used (``rates.source`` says which). The
estimate is stored in the job (``estimate``); for ``hessian_spectrum`` with
``mode: "auto"`` its ``mode`` is the mode the worker runs (the cheaper by this estimate).

``minimizer_manifold``, ``level_set_connectivity`` and ``landscape_slice`` are estimated
coarsely in gradient evaluations from their option budgets (``basis`` says so); a kind
without any model gets ``products``/``seconds`` null with a note: never a made-up figure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..diagnostics.cost import (
    DEFAULT_RATES,
    Rates,
    gradient_budget_estimate,
    hessian_estimate,
    rates_from_samples,
)
from ..modelspec.shapes import ArchitectureInfo, analyze

__all__ = ["estimate_job", "pool_rates", "work_per_sample"]


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    a, b = value
    return (int(a), int(b))


def work_per_sample(architecture: Mapping[str, Any], info: ArchitectureInfo | None = None) -> int:
    """Multiply-adds of one sample's forward pass: a dense layer's weights once, a
    convolution's weights once per output position, one per value of every other layer's
    input (activations, norms, pooling). At least ``P``; ``P`` for ``graph`` architectures.

    A product's time grows with ``N`` times this, not with ``N * P``: a convolution's few
    weights are used at every position of its output.
    """
    if info is None:
        try:
            info = analyze(dict(architecture))
        except Exception:
            return 0
    if info.graph is not None or not info.layers:
        return info.num_params
    named: dict[str, Mapping[str, Any]] = {}

    def walk(layers: Iterable[Mapping[str, Any]], prefix: str) -> None:
        for i, layer in enumerate(layers):
            named[f"{prefix}{i}"] = layer
            if layer.get("type") == "residual":
                walk(layer.get("layers", []), f"{prefix}{i}.")

    walk(info.layers, "")
    work = 0
    for name, kind in info.layer_types.items():
        shape = info.layer_inputs.get(name, ())
        weight = info.param_shapes.get(f"{name}.weight")
        if kind == "linear" and weight:
            work += math.prod(weight)
        elif kind == "conv2d" and weight and len(shape) == 3:
            layer = named.get(name, {})
            kh, kw = weight[2], weight[3]
            sh, sw = _pair(layer.get("stride") or 1)
            ph, pw = _pair(layer.get("padding", 0))
            oh = max(1, (shape[1] + 2 * ph - kh) // sh + 1)
            ow = max(1, (shape[2] + 2 * pw - kw) // sw + 1)
            work += math.prod(weight) * oh * ow
        elif kind != "residual":
            work += math.prod(shape)
    return max(work, info.num_params)


def pool_rates(workers: Iterable[Mapping[str, Any]], queue: str) -> Rates:
    """Rates measured by the live workers that serve ``queue`` (defaults if none)."""
    samples: list[Mapping[str, float]] = []
    for w in workers:
        if queue in (w.get("queues") or []):
            samples += [s for s in (w.get("rates") or []) if isinstance(s, Mapping)]
    return rates_from_samples(samples, DEFAULT_RATES)


def estimate_job(req: Mapping[str, Any], *, num_params: int, num_samples: int | None,
                 rates: Rates, work: int | None = None, outputs: int = 1) -> dict[str, Any]:
    """The estimate of a validated request (options complete).

    ``work`` is :func:`work_per_sample` of its architecture (computed here if None).
    """
    itemsize = 8 if req.get("dtype") == "float64" else 4
    n = int(num_samples or 0)
    p = int(num_params)
    if work is None:
        work = work_per_sample((req.get("model") or {}).get("architecture") or {}) or p
    kind = str(req.get("kind"))
    rates_json = {"overhead_s": rates.overhead_s, "per_unit_s": list(rates.per_unit_s),
                  "source": rates.source}
    if kind == "hessian_spectrum" and n:
        est = hessian_estimate(p, n, req.get("options") or {}, rates, itemsize,
                               work_per_sample=work)
        est["kind"] = kind
        return est
    if kind == "evaluate" and n:
        lo, mid, hi = rates.product_seconds(work * n)
        return {"kind": kind, "mode": None, "products": {"typical": 1, "max": 1},
                "memory_bytes": 3 * p * itemsize,
                "seconds": {"low": lo, "typical": mid, "high": hi}, "rates": rates_json}
    if n:
        coarse = gradient_budget_estimate(kind, p, n, req.get("options") or {}, rates,
                                          itemsize, work, outputs)
        if coarse is not None:
            return {"kind": kind, **coarse}
    return {"kind": kind, "mode": None, "products": None, "memory_bytes": 3 * p * itemsize,
            "seconds": None, "rates": rates_json,
            "note": "No product model for this kind yet: memory of the parameters only."
            if n else "The number of samples is known only when the job runs."}
