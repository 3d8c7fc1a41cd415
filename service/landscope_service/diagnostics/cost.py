"""Cost model of the curvature computations: products, memory and time, before running.

Plain Python (no torch), so the API imports it at submit time. One model serves the
submit-time estimate (``jobs/estimate.py``, with this worker pool's measured rates) and
``mode: "auto"`` of ``hessian_spectrum`` (the cheaper mode by the estimate, not by ``P``
alone).

Time of one curvature product on ``N`` samples: ``t = overhead_s + per_unit_s * N * W``,
``W`` the forward multiply-adds of one sample (``jobs/estimate.py: work_per_sample``; ``P``
for dense layers, a convolution's weights times its output positions; ``P`` when unknown).
A Hessian-vector product is a few forward and backward sweeps, each ``O(N W)``. A dense
symmetric eigendecomposition with vectors costs ``eigh_s_per_p3 * P**3``.

Defaults (:data:`DEFAULT_RATES`) were measured on one CPU thread of the development machine
(2-core x86, shared): an MLP 784-256-256-10 on 1,024 samples (about 4e-10 s per unit; BLAS
matrix products), small conv + batch-norm nets on 8x8 digits (about 5e-9 s per unit: many
small kernels, ``benchmarks/exact_blocked.py``); the range spans both. Workers replace them
with their own measurements (``seconds_per_product`` of finished jobs, in their heartbeats).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_RATES",
    "Rates",
    "choose_hessian_mode",
    "gradient_budget_estimate",
    "gradient_budgets",
    "hessian_estimate",
    "rates_from_samples",
]


@dataclass(frozen=True)
class Rates:
    """Per-product time model: ``overhead_s + per_unit_s * N * P`` (low, typical, high)."""

    overhead_s: float
    per_unit_s: tuple[float, float, float]
    eigh_s_per_p3: float
    source: str

    def product_seconds(self, units: int) -> tuple[float, float, float]:
        lo, mid, hi = self.per_unit_s
        return (self.overhead_s + lo * units, self.overhead_s + mid * units,
                self.overhead_s + hi * units)


DEFAULT_RATES = Rates(overhead_s=1e-3, per_unit_s=(3e-10, 2e-9, 1e-8), eigh_s_per_p3=2e-10,
                      source="default (no measurement from this worker pool yet)")

# hessian_spectrum defaults used when an option is missing (the kind's option table is
# the source; these only make the model usable on partial dicts)
_H_DEFAULTS: dict[str, Any] = {
    "mode": "auto", "exact_threshold": 2048, "top_k": 5, "bottom_k": 1, "max_products": 2000,
    "block_size": 1, "trace": True, "density": True, "density_probes": 8,
    "density_steps": 80, "ggn_split": True, "blocks": False, "block_max_products": 300,
    "max_basis": 400,
}
_EXTREMES_STEPS_PER_PAIR = 12
"""Typical thick-restart Lanczos products per wanted eigenpair (plus two) to tolerance
1e-6: the digits conv net took 33 products for top-5/bottom-1 and the quickstart CNN 27 for
top-3/bottom-1 (harder spectra take more); the upper bound is always ``max_products``."""
_DENSE_MEMORY_BYTES = 4 << 30


def rates_from_samples(samples: Iterable[Mapping[str, float]],
                       base: Rates = DEFAULT_RATES) -> Rates:
    """Rates from measured ``{"units": N*P, "seconds_per_product": s}`` samples.

    Each sample gives ``(s - overhead) / units``; the range is their minimum and maximum
    widened by x0.7 / x1.5, the typical value their median. No samples: ``base``.
    """
    per_unit = []
    for smp in samples:
        units = float(smp.get("units", 0) or 0)
        spp = float(smp.get("seconds_per_product", 0) or 0)
        if units > 0 and spp > 0:
            per_unit.append(max(spp - base.overhead_s, spp * 0.1) / units)
    if not per_unit:
        return base
    return Rates(overhead_s=base.overhead_s,
                 per_unit_s=(min(per_unit) * 0.7, statistics.median(per_unit),
                             max(per_unit) * 1.5),
                 eigh_s_per_p3=base.eigh_s_per_p3,
                 source=f"measured by this worker pool ({len(per_unit)} recent jobs)")


def _opts(options: Mapping[str, Any]) -> dict[str, Any]:
    return {**_H_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}


def _products(p: int, o: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    k_top, k_bot = min(int(o["top_k"]), p), min(int(o["bottom_k"]), p)
    ggn = (k_top + k_bot) if o["ggn_split"] else 0
    exact = {"typical": p + ggn, "max": p + ggn}
    if k_top + k_bot:
        ext_max = int(o["max_products"])
        ext = min(ext_max, _EXTREMES_STEPS_PER_PAIR * (k_top + k_bot + 2)
                  * int(o["block_size"]))
    else:
        ext = ext_max = 0
    probes = 0
    if o["density"] or o["trace"]:
        probes = int(o["density_probes"]) * (int(o["density_steps"]) if o["density"] else 1)
    blocks = 0
    if o["blocks"]:
        blocks = int(o["block_max_products"]) * 4  # a few layer blocks; bound per block
    iterative = {"typical": ext + probes + ggn + blocks // 4,
                 "max": ext_max + probes + ggn + blocks}
    return {"exact": exact, "iterative": iterative}


def _seconds(products: Mapping[str, int], units: int, rates: Rates, eigh_p: int
             ) -> dict[str, float]:
    lo, mid, hi = rates.product_seconds(units)
    eigh = rates.eigh_s_per_p3 * float(eigh_p) ** 3
    return {"low": products["typical"] * lo + eigh * 0.5,
            "typical": products["typical"] * mid + eigh,
            "high": products["max"] * hi + eigh * 2}


def hessian_estimate(num_params: int, num_samples: int, options: Mapping[str, Any],
                     rates: Rates = DEFAULT_RATES, itemsize: int = 4,
                     work_per_sample: int | None = None) -> dict[str, Any]:
    """Products, memory and time of ``hessian_spectrum`` in each mode, and the mode chosen.

    Args:
        num_params: ``P``.
        num_samples: ``N``.
        options: the kind's options (missing keys take the kind's defaults).
        rates: per-product time model.
        itemsize: bytes per number of the job's dtype (4 for float32, 8 for float64).
        work_per_sample: forward multiply-adds of one sample (default ``P``).

    Returns:
        ``{"mode": "exact"|"iterative", "products": {...}, "memory_bytes": ...,
        "seconds": {"low", "typical", "high"}, "modes": {mode: {products, memory_bytes,
        seconds}}, "rates": ...}``; the top-level figures are the chosen mode's.
    """
    o = _opts(options)
    p, n = int(num_params), int(num_samples)
    units = n * int(work_per_sample or p)
    prods = _products(p, o)
    basis = min(max(int(o["max_basis"]), int(o["top_k"]) + int(o["bottom_k"]) + 2),
                max(1, (2 << 30) // max(1, p * itemsize)))
    modes = {
        "exact": {"products": prods["exact"],
                  # H (dtype), its float64 copy and the float64 eigenvectors
                  "memory_bytes": p * p * (itemsize + 16),
                  "seconds": _seconds(prods["exact"], units, rates, p)},
        "iterative": {"products": prods["iterative"],
                      "memory_bytes": basis * p * itemsize,
                      "seconds": _seconds(prods["iterative"], units, rates, 0)},
    }
    mode = choose_hessian_mode(p, n, o, rates, _modes=modes)
    chosen = modes[mode]
    return {"mode": mode, "products": chosen["products"], "memory_bytes":
            chosen["memory_bytes"], "seconds": chosen["seconds"], "modes": modes,
            "rates": {"overhead_s": rates.overhead_s, "per_unit_s": list(rates.per_unit_s),
                      "source": rates.source}}


def choose_hessian_mode(num_params: int, num_samples: int, options: Mapping[str, Any],
                        rates: Rates = DEFAULT_RATES,
                        _modes: Mapping[str, Any] | None = None) -> str:
    """The mode ``"auto"`` runs: the one with the smaller typical time by the estimate.

    An explicit ``mode`` is returned as is. Exact mode is a candidate only when
    ``P <= exact_threshold`` and its dense matrix fits the exact-mode memory cap.
    """
    o = _opts(options)
    if o["mode"] in ("exact", "iterative"):
        return str(o["mode"])
    p = int(num_params)
    if p > int(o["exact_threshold"]) or p * p * 8 > _DENSE_MEMORY_BYTES:
        return "iterative"
    if _modes is None:
        _modes = hessian_estimate(p, num_samples, {**o, "mode": "iterative"}, rates)["modes"]
    exact_t = float(_modes["exact"]["seconds"]["typical"])
    iter_t = float(_modes["iterative"]["seconds"]["typical"])
    return "exact" if exact_t <= iter_t else "iterative"


def _get(opts: Mapping[str, Any], *path: str, default: Any) -> Any:
    cur: Any = opts
    for key in path:
        if not isinstance(cur, Mapping) or cur.get(key) is None:
            return default
        cur = cur[key]
    return cur


def gradient_budgets(kind: str, num_params: int, options: Mapping[str, Any],
                     outputs: int = 1) -> dict[str, int] | None:
    """Full-data gradient (or product) evaluations of the kinds without their own model:
    ``{"typical", "max"}``, or None for an unknown kind.

    Coarse and stated: ``minimizer_manifold`` counts a Jacobian of ``r`` outputs as ``r``
    gradients (per-sample rows by ``vmap``), half the fit budget typically, ``P`` products
    for a dense Hessian when allowed, the walk's retractions; ``level_set_connectivity``
    counts training steps, then per pair of minima the profile samples (and its refinement
    rounds at most) and the path finders' steps times their pivots; ``landscape_slice``
    counts a grid point as a third of a gradient (a forward pass) and its Hessian
    directions' products.
    """
    p, r = int(num_params), max(1, int(outputs))
    if kind == "minimizer_manifold":
        fit = int(_get(options, "fit_max_steps", default=100))
        hess = p if p <= int(_get(options, "hessian_exact_max_params", default=2048)) else 0
        walk = int(_get(options, "walk_steps", default=5))
        retract = int(_get(options, "retract_max_steps", default=20))
        return {"typical": fit // 2 * r + hess + walk * max(1, retract // 4) * r + r,
                "max": fit * r + hess + walk * retract * r + r}
    if kind == "level_set_connectivity":
        given = len(_get(options, "minima", default=()) or ())
        trained = int(_get(options, "num_trained", default=4))
        m = given + trained
        pairs = m * (m - 1) // 2
        train = trained * int(_get(options, "train", "steps", default=500))
        pts = int(_get(options, "paths", "linear", "num_points", default=33))
        rounds = int(_get(options, "paths", "linear", "refine_rounds", default=40))
        rpts = int(_get(options, "paths", "linear", "refine_points", default=16))
        methods = list(_get(options, "paths", "methods", default=["neb"]) or [])
        typ = mx = 0
        if "neb" in methods:
            steps = int(_get(options, "paths", "neb", "cycles", default=6)) * int(
                _get(options, "paths", "neb", "steps", default=100))
            typ += steps * (int(_get(options, "paths", "neb", "images", default=7)) + 2)
            mx += steps * int(_get(options, "paths", "neb", "max_pivots", default=33))
        if "bezier" in methods:
            b = int(_get(options, "paths", "bezier", "steps", default=300)) * int(
                _get(options, "paths", "bezier", "samples", default=8))
            typ += b
            mx += b
        return {"typical": train + pairs * (pts + typ),
                "max": train + pairs * (pts + rounds * rpts + mx)}
    if kind == "landscape_slice":
        dims = int(_get(options, "dims", default=2))
        res = _get(options, "resolution", default=None)
        if isinstance(res, (list, tuple)) and res:
            axes = [int(x) for x in res]
            if len(axes) == 1:  # one count for every axis
                axes = axes * dims
        elif isinstance(res, int) and not isinstance(res, bool):
            axes = [res] * dims
        else:
            axes = [51] * dims
        grid = 1
        for a in axes[:dims]:
            grid *= a
        hess = 0
        if _get(options, "directions", default="") == "hessian_top":
            hess = int(_get(options, "hessian", "max_products", default=1000))
        return {"typical": grid // 3 + hess // 2 + 1, "max": grid // 3 + hess + 1}
    return None


def gradient_budget_estimate(kind: str, num_params: int, num_samples: int,
                             options: Mapping[str, Any], rates: Rates = DEFAULT_RATES,
                             itemsize: int = 4, work_per_sample: int | None = None,
                             outputs: int = 1) -> dict[str, Any] | None:
    """Estimate of a kind modelled by :func:`gradient_budgets` (None if it is not)."""
    budget = gradient_budgets(kind, num_params, options, outputs)
    if budget is None:
        return None
    units = int(num_samples) * int(work_per_sample or num_params)
    return {"mode": None, "products": budget,
            "memory_bytes": 4 * int(num_params) * itemsize,
            "seconds": _seconds(budget, units, rates, 0),
            "basis": "gradient evaluations from the option budgets (a coarse model, see "
                     "diagnostics/cost.py: gradient_budgets)",
            "rates": {"overhead_s": rates.overhead_s, "per_unit_s": list(rates.per_unit_s),
                      "source": rates.source}}
