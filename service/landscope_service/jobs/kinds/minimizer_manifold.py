"""Job kind ``minimizer_manifold``: Cooper's zero-loss manifold, predicted vs measured.

Declares the submit-time check; the options live in the core's table
``diagnostics/options/minimizer_manifold.py`` (the schema here is derived from it) and the
runner in ``diagnostics/manifold/runner.py``. This module must not import torch.

Error keys of :func:`check`: keys are relative to ``options`` (``"route"``,
``"memory_mb"``); a key starting with ``^`` names a top-level request field
(``"^loss"``, ``"^data"``), as the API maps them.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from .base import KindSpec, SubmitContext

__all__ = ["KIND", "MinimizerManifoldOptionsSchema", "check"]

_MIB = 2**20
_BYTES_F64 = 8


def check(options: dict[str, Any], ctx: SubmitContext) -> None:
    """Submit-time checks of ``options`` against the request's facts.

    Raises:
        ValidationError: ``{"^loss": [...]}`` for a loss other than mse;
            ``{"route": [...]}`` when ``route="dense"`` would exceed ``memory_mb``;
            ``{"memory_mb": [...]}`` when the Gram matrix (``min(rN, P)^2`` floats,
            about three times that while factored) or the exact Hessian does not fit.
    """
    if ctx.loss != "mse":
        raise ValidationError({"^loss": [
            "minimizer_manifold needs the squared loss (mse): Cooper's theorem is about "
            f"exact fits; got {ctx.loss}."
        ]})
    budget = int(options.get("memory_mb", 1024)) * _MIB
    P = int(ctx.num_params)
    errors: dict[str, list[str]] = {}
    hess_max = int(options.get("hessian_exact_max_params", 2048))
    if P <= hess_max and 3 * _BYTES_F64 * P * P > budget:
        need = 3 * _BYTES_F64 * P * P / _MIB
        errors.setdefault("memory_mb", []).append(
            f"The exact Hessian of P = {P} parameters needs about {need:.0f} MiB; raise "
            f"memory_mb to at least {int(need) + 1} or lower hessian_exact_max_params "
            f"below {P}."
        )
    if ctx.num_samples is not None:
        m = int(ctx.num_samples) * int(ctx.output_dim)
        dense_bytes = 3 * _BYTES_F64 * m * P
        if options.get("route") == "dense" and dense_bytes > budget:
            errors.setdefault("route", []).append(
                f"The dense Jacobian route needs about {dense_bytes / _MIB:.0f} MiB "
                f"(rN = {m}, P = {P}) > memory_mb = {budget // _MIB}: use route 'gram' or "
                "'auto', or raise memory_mb."
            )
        k = min(m, P)
        gram_bytes = 3 * _BYTES_F64 * k * k
        if gram_bytes > budget:
            errors.setdefault("memory_mb", []).append(
                f"The Gram matrix ({k} x {k}) needs about {gram_bytes / _MIB:.0f} MiB > "
                f"memory_mb = {budget // _MIB}: raise memory_mb or use fewer samples."
            )
    if errors:
        raise ValidationError(errors)


KIND = KindSpec.from_table(
    "minimizer_manifold",
    check=check,
    summary=(
        "Fit to zero squared loss, Jacobian rank, predicted P - rN vs measured dimension "
        "(Cooper), Hessian nullity, and a walk along the zero-loss manifold."
    ),
)

MinimizerManifoldOptionsSchema = KIND.options_schema
