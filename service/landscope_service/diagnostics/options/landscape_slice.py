"""Options of ``landscape_slice``: the one hand-written source (see the package doc).

Cross-field conditions that the rule language cannot say (which fields a ``directions``
value needs, the range's order, the per-dimension resolution limit) are checked by the
core's :func:`landscope_service.diagnostics.slice.runner.resolve_options`, which the API's
submit-time check calls too.
"""

from __future__ import annotations

from typing import Any

from . import OptionSet, Rule, array, boolean, choice, group, integer, number, string

__all__ = ["DIRECTION_KINDS", "MAX_CHECKPOINTS", "MAX_RESOLUTION", "OPTIONS", "RUNNER",
           "cross_check", "nested_range"]

DIRECTION_KINDS = ("random_filter_normalized", "hessian_top", "minima", "path",
                   "trajectory_pca", "given")
MAX_RESOLUTION = {1: 401, 2: 201}
"""Largest points per axis: 401 for a 1-D slice, 201 x 201 for a 2-D one."""
MAX_CHECKPOINTS = 256

RUNNER = "landscope_service.diagnostics.slice.runner:run_landscape_slice"
"""The runner, ``module:function`` (imported by workers only: it imports torch)."""

_BLOB = string(None, "A weight blob id (safetensors or state_dict, the model's parameter "
               "names).", min_length=1, max_length=200)

HESSIAN = OptionSet(
    name="SliceHessianOptions",
    doc="Lanczos settings of directions 'hessian_top'.",
    fields={
        "tol": number(1e-6, "Residual tolerance relative to ||H|| of the eigenvectors.",
                      gt=0, lt=1),
        "max_products": integer(1000, "Hessian-vector product budget.", ge=1, le=100_000),
    },
)

OPTIONS = OptionSet(
    name="LandscapeSliceOptions",
    doc="Options of landscape_slice.",
    fields={
        "dims": integer(2, "1 for a profile along one direction, 2 for a surface.", ge=1,
                        le=2),
        "directions": choice(
            "random_filter_normalized", DIRECTION_KINDS,
            "random_filter_normalized: Gaussian directions rescaled per filter (Li et al. "
            "2018); hessian_top: the top Hessian eigenvectors (unit norm); minima: the line or "
            "plane through `minima`; path: the straight line between the minima `pair` of the "
            "finished level_set_connectivity job `path_job`; trajectory_pca: the top "
            "principal directions of `checkpoints`; given: `direction_blobs`."),
        "range": array(
            array(number(None, "A coordinate (in units of the direction).", ge=-1e6, le=1e6),
                  None, "[low, high] of one axis, low < high.", min_items=2, max_items=2),
            None, "[[low, high]] for every axis or one [low, high] per axis "
            "([[alpha_low, alpha_high], [beta_low, beta_high]]). null: [-1, 1]; [-0.5, 1.5] "
            "for minima and path, whose points sit at 0 and 1; for trajectory_pca the "
            "trajectory's extent and the origin, widened by 20% of the span on each side.",
            min_items=1, max_items=2, nullable=True),
        "resolution": array(integer(None, "Points on an axis.", ge=2, le=401), None,
                            "Grid points per axis: one number for every axis or one per "
                            "axis; at most 401 for a 1-D slice and 201 x 201 for a 2-D one. "
                            "null: 51.", min_items=1, max_items=2, nullable=True),
        "seed": integer(None, "Seed of the random directions (null: the job's seed); "
                        "reported in the result.", ge=0, le=2**63 - 1, nullable=True),
        "normalization": choice("filter", ("filter", "none"),
                                "Random directions: filter (per conv output channel or "
                                "linear row, to the weights' norms) or none (raw Gaussians)."),
        "bias_norm": choice("zero", ("zero", "normalize"),
                            "Biases and normalisation-layer parameters in random directions: "
                            "zero (not moved, as Li et al.) or normalize (rescaled per "
                            "parameter to its norm)."),
        "orthogonalize": boolean(False, "Make the second direction perpendicular to the first "
                                 "(Gram-Schmidt, keeping its norm)."),
        "accuracy": boolean(False, "Also the accuracy at every grid point (cross_entropy "
                            "only)."),
        "convexity": boolean(False, "|lambda_min / lambda_max| of the slice's 2-D Hessian at "
                             "every interior grid point (central differences; dims 2)."),
        "plots": boolean(True, "Write contour.png and surface.png (2-D) or profile.png."),
        "minima": array(_BLOB, None, "directions minima: 2 (line, or plane with a random "
                        "second direction) or 3 (plane) weight blob ids; the origin is the "
                        "first.", min_items=2, max_items=3, nullable=True),
        "direction_blobs": array(_BLOB, None, "directions given: one blob per axis "
                                 "(safetensors, the model's parameter names), used as they "
                                 "are.", min_items=1, max_items=2, nullable=True),
        "path_job": string(None, "directions path: id of a succeeded level_set_connectivity "
                           "job of this API key.", min_length=1, max_length=200,
                           nullable=True),
        "pair": array(integer(None, "A minimum's index in the connectivity result.", ge=0,
                              le=10_000), None, "directions path: the two minima [i, j].",
                      min_items=2, max_items=2, nullable=True),
        "path_points": array(_BLOB, None, "Set by the service at submit time from path_job "
                             "and pair (the pair's weight blobs); leave it out.",
                             min_items=2, max_items=3, nullable=True),
        "checkpoints": array(_BLOB, None, "directions trajectory_pca: weight blob ids of "
                             "the trajectory, in order (at least dims + 1).", min_items=2,
                             max_items=MAX_CHECKPOINTS, nullable=True),
        "hessian": group(HESSIAN, "Lanczos settings of hessian_top."),
        "points_per_pass": integer(None, "Grid points per batched forward pass (null: as "
                                   "many as fit a memory budget).", ge=1, le=100_000,
                                   nullable=True),
        "rows_per_piece": integer(None, "Grid rows per piece fanned out over workers (null: "
                                  "at most 16 pieces).", ge=1, le=401, nullable=True),
    },
    rules=(
        Rule("convexity", "not convexity or dims == 2",
             "convexity needs a 2-D slice (dims 2)."),
    ),
)


def nested_range(value: Any) -> Any:
    """A library caller's flat ``[low, high]`` or ``[a_lo, a_hi, b_lo, b_hi]`` as the
    table's list of pairs (anything else is left for the table to reject)."""
    if (isinstance(value, list | tuple) and value and len(value) % 2 == 0
            and not any(isinstance(v, list | tuple) for v in value)):
        return [list(value[i : i + 2]) for i in range(0, len(value), 2)]
    return value


def _missing(opts: dict[str, Any], key: str) -> bool:
    return opts.get(key) in (None, [])


def cross_check(opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """What the rule language cannot say, on options resolved by :attr:`OPTIONS`.

    Returns:
        The options with ``range`` as one ``[low, high]`` per axis and ``resolution`` as
        one count per axis (where valid), and the errors by option name (empty if none).
    """
    opts = dict(opts)
    errors: dict[str, list[str]] = {}
    dims = int(opts["dims"])
    kind = opts["directions"]
    rng = opts["range"]
    if rng is None:
        rng = [[-0.5, 1.5]] if kind in ("minima", "path") else [[-1.0, 1.0]]
    if len(rng) == 1:
        rng = [list(rng[0])] * dims
    res = opts["resolution"] or [51]
    if len(res) == 1:
        res = list(res) * dims
    if len(rng) != dims:
        errors["range"] = [f"Give [[low, high]] (every axis) or one [low, high] per axis "
                           f"for a {dims}-D slice, got {len(rng)} pairs."]
    else:
        opts["range"] = [[float(lo), float(hi)] for lo, hi in rng]
        for i, (lo, hi) in enumerate(opts["range"]):
            if not lo < hi:
                errors.setdefault("range", []).append(
                    f"The range for {('alpha', 'beta')[i]} is empty: low must be below high, "
                    f"got [{lo:g}, {hi:g}].")
    if len(res) != dims:
        errors["resolution"] = [f"Give one count, or one per axis ({dims}), got {len(res)}."]
    else:
        opts["resolution"] = [int(n) for n in res]
        for i, n in enumerate(opts["resolution"]):
            if not 2 <= n <= MAX_RESOLUTION[dims]:
                errors.setdefault("resolution", []).append(
                    f"The resolution for {('alpha', 'beta')[i]} must be between 2 and "
                    f"{MAX_RESOLUTION[dims]} for a {dims}-D slice, got {n}.")
    if kind == "minima":
        want = (2,) if dims == 1 else (2, 3)
        if _missing(opts, "minima"):
            errors["minima"] = ["Required for directions 'minima': weight blob ids."]
        elif len(opts["minima"]) not in want:
            errors["minima"] = [f"Needs {' or '.join(map(str, want))} blob ids for a {dims}-D "
                                f"slice, got {len(opts['minima'])}."]
    if kind == "given":
        if _missing(opts, "direction_blobs"):
            errors["direction_blobs"] = ["Required for directions 'given': one blob per axis."]
        elif len(opts["direction_blobs"]) != dims:
            errors["direction_blobs"] = [f"Needs {dims} blob id(s), one per axis, got "
                                         f"{len(opts['direction_blobs'])}."]
    if kind == "trajectory_pca":
        if _missing(opts, "checkpoints"):
            errors["checkpoints"] = ["Required for directions 'trajectory_pca'."]
        elif len(opts["checkpoints"]) < dims + 1:
            errors["checkpoints"] = [f"Needs at least {dims + 1} blob ids for a {dims}-D "
                                     f"slice, got {len(opts['checkpoints'])}."]
    if kind == "path" and _missing(opts, "path_points"):
        errors["path_points"] = ["Required for directions 'path': the service resolves "
                                 "path_job and pair into it (in-process, give the pair's "
                                 "weights)."]
    return opts, errors
