"""Job kind ``evaluate``: loss, gradient norm, parameter count, per-sample losses."""

from __future__ import annotations

from marshmallow import fields, validate

from .base import KindSpec, OptionsSchema


class EvaluateOptions(OptionsSchema):
    stationary_tol = fields.Float(
        load_default=1e-6,
        validate=validate.Range(min=0.0, min_inclusive=False),
        metadata={"description": "The point counts as stationary when grad_norm <= this."},
    )


KIND = KindSpec(
    name="evaluate",
    options_schema=EvaluateOptions,
    runner="landscope_service.diagnostics.evaluate:run_evaluate",
    summary="Loss, gradient norm, parameter count and per-sample loss summary.",
)
