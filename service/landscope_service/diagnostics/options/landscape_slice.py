"""Options of ``landscape_slice``: the one hand-written source (see the package doc).

Cross-field conditions that the rule language cannot say (which fields a ``directions``
value needs, the range's order, the per-dimension resolution limit) are checked by the
core's :func:`landscope_service.diagnostics.slice.runner.resolve_options`, which the API's
submit-time check calls too.
"""

from __future__ import annotations

from . import OptionSet, Rule, array, boolean, choice, group, integer, number, string

__all__ = ["DIRECTION_KINDS", "MAX_CHECKPOINTS", "MAX_RESOLUTION", "OPTIONS", "RUNNER"]

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
        "range": array(number(None, "A coordinate."), None,
                       "[low, high] of every axis, or [alpha_low, alpha_high, beta_low, "
                       "beta_high]; low < high. null: [-1, 1] ([-0.5, 1.5] for minima and "
                       "path, whose points sit at 0 and 1).", min_items=2, max_items=4,
                       nullable=True),
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
