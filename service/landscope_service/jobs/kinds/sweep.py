"""Job kind ``sweep``: one claim of THEORY.md section 4 tested over variants and seeds.

Options: ``diagnostics/options/sweep.py`` (the schema here is derived from it); runner:
``diagnostics/sweep/runner.py``. See ``docs/kinds/sweep.md``. This module must not import
torch. A claim that cannot be applied to the base network is a 422 at ``claim``.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from ...modelspec.shapes import ACTIVATIONS
from .base import KindSpec, SubmitContext

__all__ = ["KIND", "MAX_TOTAL_STEPS", "SweepOptionsSchema", "check", "widen_problem"]

MAX_TOTAL_STEPS = 2_000_000
"""Most gradient steps of one sweep: seeds x variants x train.steps."""


def widen_problem(arch: dict[str, Any], claim: str = "width_barriers") -> str | None:
    """Why ``claim``'s rule (widen hidden layers, or insert batch norm after them) cannot
    apply to ``arch`` (None if it can)."""
    kind = arch.get("type")
    if kind == "mlp":
        if arch.get("residual") or arch.get("batchnorm"):
            return (f"{claim} derives its variants from plain Linear/activation stacks; this "
                    "mlp has residual connections or batch norm. Set residual and batchnorm "
                    "to false.")
        if not arch.get("hidden"):
            return f"{claim} needs at least one hidden layer; give hidden widths."
        return None
    if kind == "sequential":
        layers = [layer for layer in arch.get("layers", []) if isinstance(layer, dict)]
        bad = sorted({str(layer.get("type")) for layer in layers
                      if layer.get("type") != "linear" and layer.get("type") not in ACTIVATIONS})
        if bad:
            return (f"{claim} derives its variants from Linear layers with elementwise "
                    f"activations between them; this architecture has {', '.join(bad)}.")
        if sum(layer.get("type") == "linear" for layer in layers) < 2:
            return f"{claim} needs at least one hidden linear layer."
        return None
    return (f"{claim} cannot derive variants from an architecture of type {kind!r}; use an "
            "mlp or a sequential of linear layers and activations.")


def check(options: dict[str, Any], ctx: SubmitContext) -> None:
    """Submit-time checks: the claim applies to the base network; the sweep's size.

    Raises:
        ValidationError: field-level messages relative to ``options``.
    """
    errors: dict[str, Any] = {}
    claim = options.get("claim")
    if claim in ("width_barriers", "batch_norm", "skip_connections"):
        why = widen_problem(dict(ctx.architecture), str(claim))
        if why is not None:
            errors["claim"] = [why]
    if claim == "batch_size" and ctx.num_samples is not None:
        sizes = {min(int(b), ctx.num_samples) for b in options.get("batch_sizes") or []}
        combos = len(sizes) * len(set(options.get("learning_rates") or []))
        if combos < 2:
            errors["batch_sizes"] = [
                f"batch_size compares at least two (batch size, learning rate) combinations; "
                f"batch sizes above N = {ctx.num_samples} become N, leaving {combos}. Give "
                "two batch sizes up to N or two learning_rates."]
    if claim == "weight_decay" and len(set(options.get("weight_decays") or [])) < 2:
        errors["weight_decays"] = ["weight_decay compares at least two distinct decays."]
    variants = (len(options.get("learning_rates") or []) if claim == "edge_of_stability"
                else len(options.get("widths") or []) if claim == "width_barriers"
                else 2 * len(options.get("depths") or []) if claim == "skip_connections"
                else len(options.get("batch_sizes") or [])
                * len(options.get("learning_rates") or []) if claim == "batch_size"
                else len(options.get("weight_decays") or []) if claim == "weight_decay"
                else 2)
    steps = int((options.get("train") or {}).get("steps", 0))
    total = int(options.get("seeds", 3)) * max(variants, 1) * steps
    if total > MAX_TOTAL_STEPS:
        errors.setdefault("train", {})["steps"] = [
            f"seeds x variants x steps = {total} exceeds {MAX_TOTAL_STEPS}; lower steps, "
            "seeds or the number of variants."]
    if errors:
        raise ValidationError(errors)


KIND = KindSpec.from_table(
    "sweep",
    check=check,
    summary="One claim of the notes' section 4 (edge of stability, width and barriers, batch "
    "norm, skip connections, batch size, weight decay) tested "
    "over variants and seeds on the caller's problem: a verdict with k/n seeds, an effect "
    "size with a bootstrap interval, confound flags and every measure per seed.",
)

SweepOptionsSchema = KIND.options_schema
