"""Job kind ``hessian_spectrum``: submit-time checks (no torch here).

Options: ``diagnostics/options/hessian_spectrum.py`` (the schema here is derived from it).
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from ...diagnostics.options.hessian_spectrum import EXACT_MAX_PARAMS
from .base import KindSpec, SubmitContext

__all__ = ["EXACT_MAX_PARAMS", "KIND", "HessianSpectrumOptionsSchema", "check_options"]

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


KIND = KindSpec.from_table(
    "hessian_spectrum",
    check=check_options,
    summary="Extreme eigenvalues (top-k, bottom-k), trace, spectral density, negative mass "
    "and index, Gauss-Newton vs residual split; exact for small models.",
)

HessianSpectrumOptionsSchema = KIND.options_schema
