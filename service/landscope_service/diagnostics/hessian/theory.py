"""The ``theory`` block of a ``hessian_spectrum`` result (THEORY.md sections 2-3).

Which statements apply to this problem, their predictions beside what was measured, and
the verdict on the point's curvature. Pure assembly from measured numbers: no products.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..output import json_float as _f
from ..problem import Problem

__all__ = ["THEORY_STATEMENTS", "hessian_theory"]

THEORY_STATEMENTS = {
    "psd": "THEORY.md section 3: near a minimum the Hessian is positive semi-definite; a "
    "negative eigenvalue means a saddle, and the number of negative eigenvalues is its "
    "Morse index.",
    "split": "THEORY.md section 3: H = G + R, with G = J^T (d2 l) J the Gauss-Newton part "
    "(positive semi-definite for mse and cross-entropy) and R the residual part.",
    "zero_loss": "THEORY.md sections 2-3: at a zero-loss minimizer of the squared loss the "
    "residual part vanishes and H is proportional to J^T J, so H has at most r*N nonzero "
    "(positive) eigenvalues and at least P - r*N zero ones.",
}



def hessian_theory(
    problem: Problem,
    opts: dict[str, Any],
    *,
    lam_min: float | None,
    lam_max: float | None,
    bottom_converged: bool,
    min_ritz: float | None,
    negative_count: float | None,
    index_exact: bool,
    loss_value: float,
    grad_norm: float,
    ggn_parts: list[dict[str, float | None]],
    norm: float,
    nonzero_count: int | None,
    index_bounds: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The ``theory`` block: which statements of THEORY.md apply, their predictions beside
    the measurements, and the verdict (minimum, saddle or inconclusive).

    A Ritz value below ``-negative_tol * ||H||`` proves negative curvature (it is a
    Rayleigh quotient), so ``saddle`` needs no convergence; ``minimum`` needs a converged
    bottom of the spectrum.
    """
    tol_abs = float(opts["negative_tol"]) * max(norm, 1e-300)
    notes: list[str] = []
    predictions: list[dict[str, Any]] = []
    applies = [THEORY_STATEMENTS["psd"], THEORY_STATEMENTS["split"]]
    # verdict: a Ritz value below -tol proves negative curvature (Rayleigh quotient)
    if min_ritz is not None and min_ritz < -tol_abs:
        verdict = "saddle"
    elif lam_min is not None and bottom_converged:
        verdict = "minimum"
    else:
        verdict = "inconclusive"
        notes.append("The bottom of the spectrum was not computed or did not converge: no "
                     "verdict on negative curvature.")
    predictions.append({
        "statement": "A minimum has no eigenvalue below -tol; a saddle has at least one.",
        "predicted": "lambda_min >= -tol at a minimum",
        "measured": {"lambda_min": _f(lam_min), "tol": _f(tol_abs)},
        "consistent": None,
    })
    if verdict == "saddle":
        notes.append(
            f"Negative curvature found: lambda_min <= {min_ritz:.6g} < -tol = {-tol_abs:.3g}. "
            + ("Morse index (exact count of eigenvalues below -tol): "
               f"{int(negative_count or 0)}." if index_exact else
               f"Morse index estimate (P * negative mass of the SLQ density): "
               f"{negative_count if negative_count is not None else 'n/a'}"
               + (f", quadrature bracket [{index_bounds[0]:.4g}, {index_bounds[1]:.4g}]."
                  if index_bounds is not None else "."))
        )
    crit_tol = 1e-4 * max(1.0, abs(loss_value))
    if grad_norm > crit_tol:
        notes.append(f"The gradient norm is {grad_norm:.3g}: this is not a critical point, so "
                     "the verdict describes the local curvature, not a critical point's type.")
    if ggn_parts:
        ggn_min = min(float(p["ggn"]) for p in ggn_parts if p["ggn"] is not None)
        predictions.append({
            "statement": THEORY_STATEMENTS["split"],
            "predicted": "v^T G v >= 0 for every vector v",
            "measured": {"min_ggn_rayleigh_quotient": _f(ggn_min)},
            "consistent": bool(ggn_min >= -tol_abs),
        })
    if problem.loss == "mse":
        applies.append(THEORY_STATEMENTS["zero_loss"])
        r = int(np.prod(problem.y.shape[1:])) if problem.y.ndim > 1 else 1
        rn = r * problem.num_samples
        at_zero = loss_value <= 1e-8
        measured: dict[str, Any] = {"loss": _f(loss_value), "rN": rn,
                                    "num_params": problem.num_params}
        if nonzero_count is not None:
            measured["eigenvalues_above_tol"] = nonzero_count
        if ggn_parts:
            measured["max_abs_residual_part"] = _f(max(abs(float(p["residual"] or 0.0))
                                                       for p in ggn_parts))
        consistent = None
        if at_zero and nonzero_count is not None:
            consistent = bool(nonzero_count <= rn)
        if not at_zero:
            notes.append("The loss is not zero: the zero-loss statement of sections 2-3 "
                         "(residual part 0, at most r*N nonzero eigenvalues) does not apply here.")
        predictions.append({
            "statement": THEORY_STATEMENTS["zero_loss"],
            "predicted": f"at zero loss: at most rN = {rn} nonzero eigenvalues, residual 0",
            "measured": measured,
            "consistent": consistent,
        })
    return {
        "applies": applies,
        "predictions": predictions,
        "measured": {
            "lambda_max": _f(lam_max),
            "lambda_min": _f(lam_min),
            "negative_tol": _f(tol_abs),
            "index_estimate": _f(negative_count),
            "index_bounds": None if index_bounds is None else [_f(index_bounds[0]),
                                                              _f(index_bounds[1])],
            "index_exact": index_exact,
            "grad_norm": _f(grad_norm),
            "loss": _f(loss_value),
        },
        "verdict": verdict,
        "notes": notes,
    }

