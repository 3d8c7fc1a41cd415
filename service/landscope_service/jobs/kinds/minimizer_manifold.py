"""Job kind ``minimizer_manifold``: Cooper's zero-loss manifold, predicted vs measured.

Declares the options schema and the submit-time check; the runner lives in the core
(``landscope_service.diagnostics.manifold.runner``) and is imported by the worker only.
This module must not import torch.

Error keys of :func:`check`: keys are relative to ``options`` (``"route"``,
``"memory_mb"``); a key starting with ``^`` names a top-level request field
(``"^loss"``, ``"^data"``), as the API maps them.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from .base import KindSpec, OptionsSchema, SubmitContext

__all__ = ["KIND", "MinimizerManifoldOptionsSchema", "check"]

_MIB = 2**20
_BYTES_F64 = 8


class MinimizerManifoldOptionsSchema(OptionsSchema):
    """Options of ``minimizer_manifold`` (every field has a default).

    The same defaults are ``DEFAULT_OPTIONS`` of the core's runner (a test checks it).
    """

    fit_tol = fields.Float(
        load_default=1e-20,
        validate=validate.Range(min=0, min_inclusive=False, max=1.0),
        metadata={"description": "Loss (mean squared error) at or below which the fit "
                  "counts as interpolating."},
    )
    fit_max_steps = fields.Integer(
        strict=True, load_default=100, validate=validate.Range(min=0, max=10_000),
        metadata={"description": "Levenberg-Marquardt step budget (Jacobian evaluations)."},
    )
    route = fields.String(
        load_default="auto", validate=validate.OneOf(["auto", "dense", "gram"]),
        metadata={"description": "Jacobian route: dense J (SVD) or the Gram matrix J J^T "
                  "built from blocks; auto picks dense when 3 * 8 rN P bytes fit memory_mb."},
    )
    memory_mb = fields.Integer(
        strict=True, load_default=1024, validate=validate.Range(min=16, max=16_384),
        metadata={"description": "Working-memory budget (MiB) for Jacobian blocks and the "
                  "route choice."},
    )
    chunk_size = fields.Integer(
        strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1),
        metadata={"description": "Samples per Jacobian block; null sizes blocks from "
                  "memory_mb."},
    )
    rank_rtol = fields.Float(
        load_default=None, allow_none=True,
        validate=validate.Range(min=0, min_inclusive=False, max=1, max_inclusive=False),
        metadata={"description": "Override of the relative rank tolerance "
                  "(sigma_i > rank_rtol * sigma_max); null uses the documented rule."},
    )
    hessian_exact_max_params = fields.Integer(
        strict=True, load_default=2048, validate=validate.Range(min=0, max=8192),
        metadata={"description": "Dense Hessian (P HVPs) when P is at most this; else the "
                  "nullity comes from the Gram matrix."},
    )
    walk_steps = fields.Integer(
        strict=True, load_default=5, validate=validate.Range(min=0, max=1000),
        metadata={"description": "Steps along random directions in null(J)."},
    )
    walk_step_length = fields.Float(
        load_default=0.05, validate=validate.Range(min=0, min_inclusive=False, max=1e3),
        metadata={"description": "Euclidean length of each walk step (and of the control "
                  "step) in parameter space."},
    )
    retract_max_steps = fields.Integer(
        strict=True, load_default=20, validate=validate.Range(min=1, max=1000),
        metadata={"description": "Gauss-Newton steps allowed per retraction."},
    )
    control_step = fields.Boolean(
        load_default=True,
        metadata={"description": "Also take one step orthogonal to null(J) and report "
                  "its loss rise."},
    )


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


KIND = KindSpec(
    name="minimizer_manifold",
    options_schema=MinimizerManifoldOptionsSchema,
    runner="landscope_service.diagnostics.manifold.runner:run_minimizer_manifold",
    check=check,
    summary=(
        "Fit to zero squared loss, Jacobian rank, predicted P - rN vs measured dimension "
        "(Cooper), Hessian nullity, and a walk along the zero-loss manifold."
    ),
)
