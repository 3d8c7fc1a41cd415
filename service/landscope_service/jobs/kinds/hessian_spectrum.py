"""Job kind ``hessian_spectrum``: options schema and submit-time checks (no torch here).

The runner is ``landscope_service.diagnostics.hessian.runner:run_hessian_spectrum``; its
``DEFAULT_OPTIONS`` equal this schema's ``load_default`` values (a unit test checks it).
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from .base import KindSpec, OptionsSchema, SubmitContext

__all__ = ["KIND", "HessianSpectrumOptionsSchema", "check_options"]

HVP_CHOICES = (
    "auto",
    "double_backward",
    "forward_over_reverse",
    "reverse_over_reverse",
    "vmap_forward_over_reverse",
)

#: Largest P accepted for ``mode="exact"``: the dense float64 Hessian needs 8 P^2 bytes
#: (20,000 -> 3.2 GB) and ``eigh`` O(P^3) time.
EXACT_MAX_PARAMS = 20_000


class HessianSpectrumOptionsSchema(OptionsSchema):
    """Options of ``hessian_spectrum`` (see docs/kinds/hessian_spectrum.md)."""

    mode = fields.String(load_default="auto",
                         validate=validate.OneOf(["auto", "exact", "iterative"]),
                         metadata={"description": "exact: dense Hessian + eigh; iterative: "
                                   "Lanczos + SLQ; auto: exact when P <= exact_threshold."})
    exact_threshold = fields.Integer(strict=True, load_default=2048,
                                     validate=validate.Range(min=0, max=EXACT_MAX_PARAMS))
    top_k = fields.Integer(strict=True, load_default=5, validate=validate.Range(min=0))
    bottom_k = fields.Integer(strict=True, load_default=1, validate=validate.Range(min=0))
    tol = fields.Float(load_default=1e-6,
                       validate=validate.Range(min=0, max=1, min_inclusive=False,
                                               max_inclusive=False),
                       metadata={"description": "Residual tolerance relative to ||H||."})
    max_products = fields.Integer(strict=True, load_default=2000,
                                  validate=validate.Range(min=1, max=100_000))
    max_basis = fields.Integer(strict=True, load_default=400,
                               validate=validate.Range(min=4, max=5000))
    block_size = fields.Integer(strict=True, load_default=1,
                                validate=validate.Range(min=1, max=64),
                                metadata={"description": "Block Lanczos block size: resolves "
                                          "eigenvalues repeated up to block_size times."})
    trace = fields.Boolean(load_default=True)
    density = fields.Boolean(load_default=True)
    density_probes = fields.Integer(strict=True, load_default=8,
                                    validate=validate.Range(min=1, max=1000))
    density_steps = fields.Integer(strict=True, load_default=80,
                                   validate=validate.Range(min=2, max=2000))
    density_grid_points = fields.Integer(strict=True, load_default=512,
                                         validate=validate.Range(min=2, max=100_000))
    density_sigma = fields.Float(load_default=None, allow_none=True,
                                 validate=validate.Range(min=0, min_inclusive=False))
    negative_tol = fields.Float(load_default=1e-5, validate=validate.Range(min=0, max=1))
    ggn_split = fields.Boolean(load_default=True)
    blocks = fields.Boolean(load_default=False)
    block_max_products = fields.Integer(strict=True, load_default=300,
                                        validate=validate.Range(min=1, max=100_000))
    hvp = fields.String(load_default="auto", validate=validate.OneOf(HVP_CHOICES))
    return_eigenvectors = fields.Boolean(load_default=False)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        top = data.get("top_k", 5)
        bottom = data.get("bottom_k", 1)
        basis = data.get("max_basis", 400)
        need = top + bottom + 2 * data.get("block_size", 1)
        if basis < need:
            raise ValidationError(
                f"max_basis={basis} must be >= top_k + bottom_k + 2 * block_size = {need}.",
                field_name="max_basis",
            )


def check_options(options: dict[str, Any], ctx: SubmitContext) -> None:
    """Check options against the request: counts against P, exact mode against memory.

    Raises:
        ValidationError: with field-level messages a person can act on.
    """
    p = ctx.num_params
    errors: dict[str, list[str]] = {}
    for key in ("top_k", "bottom_k"):
        k = int(options.get(key, 0))
        if k > p:
            errors[key] = [f"{key}={k} exceeds the parameter count P={p}; choose {key} <= {p}."]
    top, bottom = int(options.get("top_k", 0)), int(options.get("bottom_k", 0))
    if "top_k" not in errors and "bottom_k" not in errors and top + bottom > p:
        errors["bottom_k"] = [f"top_k + bottom_k = {top + bottom} exceeds the parameter count "
                              f"P={p}; choose bottom_k <= {p - top}."]
    block = int(options.get("block_size", 1))
    if block > 1 and block > p // 2:
        errors["block_size"] = [f"block_size={block} must be at most P/2 = {p // 2} "
                                f"(P={p}); choose block_size <= {max(1, p // 2)}."]
    if options.get("mode") == "exact" and p > EXACT_MAX_PARAMS:
        errors["mode"] = [f"mode='exact' needs a dense {p}x{p} Hessian; it is allowed up to "
                          f"P={EXACT_MAX_PARAMS}. Use mode='iterative' or 'auto'."]
    if ctx.loss not in ("mse", "cross_entropy"):
        errors["ggn_split"] = [f"The Gauss-Newton split supports mse and cross_entropy, got "
                               f"loss={ctx.loss!r}."]
    if errors:
        raise ValidationError(errors)


KIND = KindSpec(
    name="hessian_spectrum",
    options_schema=HessianSpectrumOptionsSchema,
    runner="landscope_service.diagnostics.hessian.runner:run_hessian_spectrum",
    check=check_options,
    summary="Extreme eigenvalues (top-k, bottom-k), trace, spectral density, negative mass "
    "and index, Gauss-Newton vs residual split; exact for small models.",
)
