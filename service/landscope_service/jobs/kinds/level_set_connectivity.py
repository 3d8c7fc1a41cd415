"""Job kind ``level_set_connectivity``: minima, paths, barriers, N_lambda, merge tree.

Declares the options schema and the submit-time check; the runner lives in the core
(``landscope_service.diagnostics.connectivity.runner``) and is imported by the worker
only. This module must not import torch. The schema's defaults equal the runner's
``DEFAULT_OPTIONS`` (a unit test checks it). See ``docs/kinds/level_set_connectivity.md``.

Error keys of :func:`check` are relative to ``options`` (``"minima"``, ``"align"``).
"""

from __future__ import annotations

import math
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from ...modelspec.shapes import ACTIVATIONS
from .base import KindSpec, OptionsSchema, SubmitContext

__all__ = ["KIND", "LevelSetConnectivityOptionsSchema", "check"]

MAX_MINIMA = 64
"""Largest number of minima of one job (M (M - 1) / 2 pairs get a cheap bound)."""


def _int(default: int | None, lo: int, hi: int, doc: str, *, allow_none: bool = False) -> Any:
    return fields.Integer(
        strict=True,
        load_default=default,
        allow_none=allow_none,
        validate=validate.Range(min=lo, max=hi),
        metadata={"description": doc},
    )


def _pos(default: float, doc: str, hi: float = 1e6) -> Any:
    return fields.Float(
        load_default=default,
        validate=validate.Range(min=0, min_inclusive=False, max=hi),
        metadata={"description": doc},
    )


def _nested(schema: type[OptionsSchema], doc: str) -> Any:
    return fields.Nested(
        schema, load_default=lambda: schema().load({}), metadata={"description": doc}
    )


class TrainOptionsSchema(OptionsSchema):
    """Full-batch training of the seed-trained minima."""

    optimizer = fields.String(
        load_default="adam",
        validate=validate.OneOf(["adam", "sgd", "lbfgs"]),
        metadata={"description": "adam, sgd (heavy ball) or lbfgs (strong Wolfe)."},
    )
    steps = _int(500, 0, 1_000_000, "Optimiser steps per minimum.")
    lr = _pos(0.01, "Learning rate.")
    momentum = fields.Float(
        load_default=0.9,
        validate=validate.Range(min=0, max=1, max_inclusive=False),
        metadata={"description": "Momentum of sgd."},
    )


class LinearOptionsSchema(OptionsSchema):
    """Evaluation grid of every path profile (linear paths and optimised curves)."""

    num_points = _int(33, 2, 10_000, "Uniform grid points on [0, 1].")
    refine_rounds = _int(3, 0, 20, "Zoom rounds around the highest point.")
    refine_points = _int(8, 0, 1000, "New points per zoom round.")


class NEBOptionsSchema(OptionsSchema):
    """Nudged elastic band with AutoNEB pivot insertion (Draxler et al. 2018)."""

    images = _int(5, 1, 1000, "Interior pivots of the initial straight chain.")
    cycles = _int(4, 1, 100, "AutoNEB cycles (relax, then insert pivots).")
    steps = _int(150, 0, 100_000, "Adam steps per cycle.")
    lr = _pos(0.05, "Learning rate relative to the RMS per-coordinate endpoint distance.")
    spring = fields.Float(
        load_default=1.0,
        validate=validate.Range(min=0, max=1e6),
        metadata={"description": "Spring constant relative to the mean perpendicular force."},
    )
    climb = fields.Boolean(load_default=True, metadata={"description": "Climbing image."})
    max_pivots = _int(24, 3, 10_000, "Most pivots, endpoints included.")
    insert_per_cycle = _int(2, 0, 1000, "Pivots inserted per cycle at most.")
    segment_points = _int(7, 1, 1000, "Points per segment searched for the highest residual.")
    insert_tol = fields.Float(
        load_default=1e-3,
        validate=validate.Range(min=0, max=1),
        metadata={"description": "Relative rise of a segment that earns a new pivot."},
    )

    @validates_schema
    def _pivots(self, data: dict[str, Any], **_: Any) -> None:
        if data["max_pivots"] < data["images"] + 2:
            raise ValidationError(
                f"max_pivots ({data['max_pivots']}) must be at least images + 2 "
                f"({data['images'] + 2}).",
                "max_pivots",
            )


class BezierOptionsSchema(OptionsSchema):
    """Quadratic Bezier curve trained on the expected loss (Garipov et al. 2018)."""

    steps = _int(300, 0, 100_000, "Adam steps on the control point.")
    lr = _pos(0.05, "Learning rate relative to the RMS per-coordinate endpoint distance.")
    samples = _int(8, 1, 1024, "t samples per step.")


class PathsOptionsSchema(OptionsSchema):
    """Which optimised path finders refine a pair, and their settings."""

    methods = fields.List(
        fields.String(validate=validate.OneOf(["neb", "bezier"])),
        load_default=lambda: ["neb"],
        validate=validate.Length(min=1, max=2),
        metadata={"description": "Optimised path finders: neb and/or bezier (the lower wins)."},
    )
    linear = _nested(LinearOptionsSchema, "Profile grid.")
    neb = _nested(NEBOptionsSchema, "AutoNEB settings.")
    bezier = _nested(BezierOptionsSchema, "Bezier settings.")


class RefineOptionsSchema(OptionsSchema):
    """Which pairs get optimised paths."""

    strategy = fields.String(
        load_default="exact",
        validate=validate.OneOf(["exact", "mst", "all", "none"]),
        metadata={
            "description": "exact: minimum-spanning-tree edges first, then every pair that "
            "could still lower a merge height (its lower bound max(L_i, L_j) is below it): "
            "the same N_lambda and merge heights as all, usually for fewer pairs; mst: the "
            "same with an optimistic prediction instead of the bound (cheaper, may miss a "
            "low path); all: every pair; none: linear bounds only."
        },
    )
    budget_pairs = _int(None, 0, 100_000, "Most pairs refined (null: no limit).", allow_none=True)
    beyond_mst = fields.Boolean(
        load_default=True,
        metadata={
            "description": "mst strategy: once the tree is stable, also refine the "
            "pairs predicted (optimistically, from the refined pairs' ratio of optimised "
            "to linear excess) to lower a merge height."
        },
    )


class LevelSetConnectivityOptionsSchema(OptionsSchema):
    """Options of ``level_set_connectivity`` (every field has a default)."""

    minima = fields.List(
        fields.String(validate=validate.Length(min=1, max=200)),
        load_default=list,
        validate=validate.Length(max=MAX_MINIMA),
        metadata={"description": "Weight blob ids of given minima (same architecture)."},
    )
    num_trained = _int(4, 0, MAX_MINIMA, "Minima trained by the service from derived seeds.")
    train = _nested(TrainOptionsSchema, "Training of the seed-trained minima.")
    paths = _nested(PathsOptionsSchema, "Path finders.")
    align = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Also report barriers and counts modulo permutations of "
            "hidden units (weight matching)."
        },
    )
    refine = _nested(RefineOptionsSchema, "Refinement strategy and budget.")
    lambda_grid = fields.List(
        fields.Float(allow_nan=False),
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=10_000),
        metadata={
            "description": "Loss levels lambda for N_lambda; null: a uniform grid of "
            "lambda_grid_size levels spanning the minima and merge heights."
        },
    )
    lambda_grid_size = _int(64, 2, 10_000, "Levels of the automatic grid.")
    persistence_threshold = fields.Float(
        load_default=1e-2,
        validate=validate.Range(min=0, max=1),
        metadata={
            "description": "Relative persistence below which a merge counts as "
            "numerical noise (times the spread of heights)."
        },
    )

    @validates_schema
    def _counts(self, data: dict[str, Any], **_: Any) -> None:
        m = len(data.get("minima") or []) + int(data.get("num_trained", 0))
        if m < 2:
            raise ValidationError(
                f"At least 2 minima are needed: {len(data.get('minima') or [])} given and "
                f"{data.get('num_trained', 0)} to train make {m}; add weight blob ids to "
                "minima or raise num_trained.",
                "num_trained",
            )
        if m > MAX_MINIMA:
            raise ValidationError(f"At most {MAX_MINIMA} minima per job, got {m}.", "num_trained")
        grid = data.get("lambda_grid")
        if grid is not None and not all(math.isfinite(x) for x in grid):
            raise ValidationError("lambda_grid values must be finite.", "lambda_grid")


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


KIND = KindSpec(
    name="level_set_connectivity",
    options_schema=LevelSetConnectivityOptionsSchema,
    runner="landscope_service.diagnostics.connectivity.runner:run_level_set_connectivity",
    check=check,
    summary=(
        "Minima (given or trained), optimised paths between them (AutoNEB, Bezier), "
        "barrier upper bounds, N_lambda over a lambda grid, merge tree and theory overlay."
    ),
)
