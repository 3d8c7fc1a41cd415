"""Job kind ``level_set_connectivity``: minima, paths, barriers, N_lambda, merge tree.

Declares the submit-time check; the options live in the core's table
``diagnostics/options/level_set_connectivity.py`` (the schema here is derived from it) and
the runner in ``diagnostics/connectivity/runner.py``. This module must not import torch.
See ``docs/kinds/level_set_connectivity.md``.

Error keys of :func:`check` are relative to ``options`` (``"minima"``, ``"align"``).
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from ...diagnostics.options.level_set_connectivity import MAX_MINIMA
from ...modelspec.graph_perm import permutation_spec
from ...modelspec.shapes import ACTIVATIONS, analyze
from .base import KindSpec, SubmitContext

__all__ = ["KIND", "MAX_MINIMA", "LevelSetConnectivityOptionsSchema", "check"]

_ALIGNABLE_LAYERS = {"linear", "batchnorm", *ACTIVATIONS}


def _align_problem(arch: dict[str, Any]) -> str | None:
    """Why permutation alignment cannot handle ``arch`` (None if it can)."""
    kind = arch.get("type")
    if kind == "mlp":
        if arch.get("residual"):
            return (
                "align supports plain Linear/activation stacks; this mlp has residual "
                "connections. Set align to false or residual to false."
            )
        return None
    if kind == "sequential":
        bad = sorted(
            {
                str(layer.get("type"))
                for layer in arch.get("layers", [])
                if isinstance(layer, dict) and layer.get("type") not in _ALIGNABLE_LAYERS
            }
        )
        if bad:
            return (
                "align supports Linear layers with batchnorm and elementwise activations "
                f"between them; this architecture has {', '.join(bad)}. Set align to false."
            )
        return None
    if kind == "graph":
        info = analyze(arch).graph
        spec = permutation_spec(info) if info is not None else None
        if spec is None or not spec.groups:
            why = spec.pinned[0] if spec is not None and spec.pinned else "no hidden layer"
            return (
                f"align finds no permutation group in this graph: {why}. Set align to false."
            )
        return None
    return f"align does not support architecture type {kind!r}."


def check(options: dict[str, Any], ctx: SubmitContext) -> None:
    """Submit-time checks of ``options`` against the request's facts.

    Raises:
        ValidationError: ``{"minima": {i: [msg]}}`` for a weight blob that does not fit
            the architecture; ``{"align": [msg]}`` when alignment is asked for an
            architecture it cannot permute.
    """
    errors: dict[str, Any] = {}
    bad: dict[int, list[str]] = {}
    for i, ref in enumerate(options.get("minima") or []):
        try:
            ctx.check_weights(ref)
        except ValueError as e:
            bad[i] = [str(e)]
    if bad:
        errors["minima"] = bad
    if options.get("align"):
        why = _align_problem(dict(ctx.architecture))
        if why is not None:
            errors["align"] = [why]
    if errors:
        raise ValidationError(errors)


KIND = KindSpec.from_table(
    "level_set_connectivity",
    check=check,
    summary=(
        "Minima (given or trained), optimised paths between them (AutoNEB, Bezier), "
        "barrier upper bounds, N_lambda over a lambda grid, merge tree and theory overlay."
    ),
)

LevelSetConnectivityOptionsSchema = KIND.options_schema
