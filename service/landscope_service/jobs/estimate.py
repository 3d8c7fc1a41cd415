"""Submit-time cost estimate of a job: products, memory and a time range.

The figures come from the core's cost model (:mod:`landscope_service.diagnostics.cost`,
plain Python) with the per-product rates this worker pool measured: every worker keeps
the seconds per product of its recent jobs and sends them in its heartbeat. Without a
measurement the model's documented defaults are used (``rates.source`` says which). The
estimate is stored in the job (``estimate``); for ``hessian_spectrum`` with
``mode: "auto"`` its ``mode`` is the mode the worker runs (the cheaper by this estimate).

Kinds without a product model yet (``minimizer_manifold``, ``level_set_connectivity``,
...) get the memory of their parameters and data and ``products``/``seconds`` null, with
a note saying so: never a made-up figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..diagnostics.cost import DEFAULT_RATES, Rates, hessian_estimate, rates_from_samples

__all__ = ["estimate_job", "pool_rates"]


def pool_rates(workers: Iterable[Mapping[str, Any]], queue: str) -> Rates:
    """Rates measured by the live workers that serve ``queue`` (defaults if none)."""
    samples: list[Mapping[str, float]] = []
    for w in workers:
        if queue in (w.get("queues") or []):
            samples += [s for s in (w.get("rates") or []) if isinstance(s, Mapping)]
    return rates_from_samples(samples, DEFAULT_RATES)


def estimate_job(req: Mapping[str, Any], *, num_params: int, num_samples: int | None,
                 rates: Rates) -> dict[str, Any]:
    """The estimate of a validated request (options complete)."""
    itemsize = 8 if req.get("dtype") == "float64" else 4
    n = int(num_samples or 0)
    p = int(num_params)
    kind = str(req.get("kind"))
    rates_json = {"overhead_s": rates.overhead_s, "per_unit_s": list(rates.per_unit_s),
                  "source": rates.source}
    if kind == "hessian_spectrum" and n:
        est = hessian_estimate(p, n, req.get("options") or {}, rates, itemsize)
        est["kind"] = kind
        return est
    if kind == "evaluate" and n:
        lo, mid, hi = rates.product_seconds(p * n)
        return {"kind": kind, "mode": None, "products": {"typical": 1, "max": 1},
                "memory_bytes": 3 * p * itemsize,
                "seconds": {"low": lo, "typical": mid, "high": hi}, "rates": rates_json}
    return {"kind": kind, "mode": None, "products": None, "memory_bytes": 3 * p * itemsize,
            "seconds": None, "rates": rates_json,
            "note": "No product model for this kind yet: memory of the parameters only."
            if n else "The number of samples is known only when the job runs."}
