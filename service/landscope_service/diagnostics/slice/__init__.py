"""Loss slices: 1-D and 2-D sections of the loss landscape (job kind ``landscape_slice``).

Directions (:mod:`.directions`: filter-normalised random, Hessian eigenvectors, the plane
of minima, a connectivity path, a trajectory's PCA, given), batched grid evaluation
(:mod:`.grid`), measures on the slice (:mod:`.measures`), files (:mod:`.plots`) and the
job runner (:mod:`.runner`).
"""

from .directions import (
    BiasNorm,
    SliceDirections,
    coordinates,
    direction_report,
    filter_normalize,
    given_directions,
    hessian_top,
    orthogonalize,
    parameter_roles,
    plane_through,
    random_filter_normalized,
    trajectory_pca,
)
from .grid import DEFAULT_MEMORY_BYTES, evaluate_points, points_per_pass, rows_piece
from .measures import axis_curvature, convexity_map, slice_minimum
from .runner import (
    DEFAULT_OPTIONS,
    DIRECTION_KINDS,
    MAX_RESOLUTION,
    resolve_options,
    run_landscape_slice,
)

__all__ = [
    "DEFAULT_MEMORY_BYTES",
    "DEFAULT_OPTIONS",
    "DIRECTION_KINDS",
    "MAX_RESOLUTION",
    "BiasNorm",
    "SliceDirections",
    "axis_curvature",
    "convexity_map",
    "coordinates",
    "direction_report",
    "evaluate_points",
    "filter_normalize",
    "given_directions",
    "hessian_top",
    "orthogonalize",
    "parameter_roles",
    "plane_through",
    "points_per_pass",
    "random_filter_normalized",
    "resolve_options",
    "rows_piece",
    "run_landscape_slice",
    "slice_minimum",
    "trajectory_pca",
]
