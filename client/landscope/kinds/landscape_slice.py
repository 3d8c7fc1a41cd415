"""The ``landscape_slice`` kind: 1-D and 2-D loss slices and their measures.

The loss ``L(theta0 + alpha d1 + beta d2)`` on a grid, along filter-normalised random
directions, Hessian eigenvectors, the plane of given minima, a connectivity path, a
trajectory's principal directions or given directions; the slice's minimum, the curvature
along each axis, optionally the accuracy and the convexity map; artifacts ``slice.npz``,
``contour.png``/``surface.png`` (2-D) or ``profile.png`` (1-D) and ``slice.vtk``. See
``docs/kinds/landscape_slice.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from landscope._exceptions import InvalidResponseError

from ._options import LandscapeSliceOptions, SliceHessianOptions
from ._read import FromJson

__all__ = [
    "AxisSharpness",
    "LandscapeSliceOptions",
    "LandscapeSliceResult",
    "SliceAxes",
    "SliceConvexity",
    "SliceDirection",
    "SliceHessianOptions",
    "SliceMinimum",
    "SlicePoint",
    "SliceSharpness",
]

DirectionKind = Literal["random_filter_normalized", "hessian_top", "minima", "path",
                        "trajectory_pca", "given"]


@dataclass(frozen=True)
class SliceAxes(FromJson):
    """Grid coordinates: ``alpha`` (first axis) and ``beta`` (None for a 1-D slice)."""

    alpha: tuple[float, ...]
    beta: tuple[float, ...] | None


@dataclass(frozen=True)
class SliceDirection(FromJson):
    """One axis direction.

    Attributes:
        name: e.g. ``"random 0"``, ``"eigenvector 1"``, ``"minimum 1 - minimum 0"``.
        norm: its Euclidean norm.
        relative_norm: ``norm / ||theta0||`` (None when the origin is zero).
        nonzero_params: the parameters it moves.
        cosine: cosine between the two directions (2-D only).
        cosine_before_orthogonalization: the cosine before Gram-Schmidt, when asked.
    """

    name: str
    norm: float
    relative_norm: float | None
    nonzero_params: tuple[str, ...]
    index: int
    cosine: float | None = None
    cosine_before_orthogonalization: float | None = None


@dataclass(frozen=True)
class SliceMinimum(FromJson):
    """The smallest grid value and where it is."""

    loss: float | None
    alpha: float
    beta: float | None


@dataclass(frozen=True)
class AxisSharpness(FromJson):
    """Curvature along one axis at the centre.

    Attributes:
        curvature: ``(L(h) - 2 L(0) + L(-h)) / h^2`` (``d^T H d`` up to ``h^2``).
        step: ``h``, the grid spacing.
        max_increase: the largest rise above the centre along the grid line.
    """

    curvature: float | None
    step: float
    max_increase: float | None


@dataclass(frozen=True)
class SliceSharpness(FromJson):
    """Per-axis sharpness (``beta`` None for 1-D)."""

    alpha: AxisSharpness
    beta: AxisSharpness | None = None


@dataclass(frozen=True)
class SliceConvexity(FromJson):
    """``|lambda_min / lambda_max|`` of the slice's 2-D Hessian per grid point.

    Attributes:
        ratio: ``[beta][alpha]``; None on the boundary (central differences).
        nonconvex_fraction: share of interior points with ``lambda_min < 0``.
        max_ratio: the largest ratio.
        method: how it was computed.
    """

    ratio: tuple[tuple[float | None, ...], ...]
    nonconvex_fraction: float | None
    max_ratio: float | None
    method: str


@dataclass(frozen=True)
class SlicePoint(FromJson):
    """A given point (minimum, path end) placed in the slice.

    Attributes:
        label: e.g. ``"minimum 0"``.
        alpha, beta: its least-squares coordinates.
        loss: the loss at the point's own parameters.
        loss_at_coordinates: the loss at ``theta0 + alpha d1 + beta d2``.
        distance_from_slice: how far the point is from the plane (0 up to rounding when it
            lies in it).
    """

    label: str
    alpha: float | None
    beta: float | None
    loss: float | None
    loss_at_coordinates: float | None
    distance_from_slice: float | None


@dataclass(frozen=True)
class LandscapeSliceResult(FromJson):
    """Result of ``landscape_slice``.

    Attributes:
        dims: 1 or 2.
        direction_kind: how the directions were made.
        seed: the seed of the random directions.
        directions: one entry per axis (norm, cosine, ...).
        direction_info: details of the directions (seed, eigenvalues, explained variance).
        orthogonalized: whether the second direction was made perpendicular.
        origin: ``"model weights"`` or ``"first point"`` (minima, path).
        axes: the grid coordinates.
        loss: ``[beta][alpha]`` lists for 2-D, one list for 1-D (None where not finite);
            :meth:`loss_rows` gives rows in both cases.
        accuracy: like ``loss``, when asked (cross-entropy).
        centre_loss: the loss at the origin.
        minimum: the slice's smallest value and its position.
        maximum_loss: the largest finite grid value.
        sharpness: curvature along each axis.
        convexity: the convexity map, when asked (2-D).
        points: given points (minima, path ends) in the slice.
        trajectory: projected checkpoints ``[[alpha, beta], ...]`` (trajectory_pca).
        num_points, points_per_pass, pieces: the work done.
        warnings: non-finite values, points off the slice.
        theory: which statements apply and their checks (free-form JSON).
    """

    dims: int
    direction_kind: DirectionKind
    seed: int
    directions: tuple[SliceDirection, ...]
    axes: SliceAxes
    loss: tuple[Any, ...]
    centre_loss: float | None
    minimum: SliceMinimum | None
    sharpness: SliceSharpness
    num_points: int
    loss_name: str = "mse"
    origin: str = "model weights"
    orthogonalized: bool = False
    direction_info: Mapping[str, Any] = field(default_factory=dict)
    accuracy: tuple[Any, ...] | None = None
    maximum_loss: float | None = None
    convexity: SliceConvexity | None = None
    points: tuple[SlicePoint, ...] = ()
    trajectory: tuple[tuple[float | None, ...], ...] | None = None
    points_per_pass: int | None = None
    pieces: int | None = None
    warnings: tuple[str, ...] = ()
    theory: Mapping[str, Any] = field(default_factory=dict)

    @staticmethod
    def _rows(values: tuple[Any, ...], what: str, width: int) -> list[list[float | None]]:
        rows = [list(r) for r in values] if values and isinstance(values[0], list | tuple) \
            else [list(values)]
        for r in rows:
            if len(r) != width or not all(
                    v is None or (isinstance(v, int | float) and not isinstance(v, bool))
                    for v in r):
                raise InvalidResponseError(f"result.{what} should hold rows of {width} numbers.")
        return [[None if v is None else float(v) for v in r] for r in rows]

    def loss_rows(self) -> list[list[float | None]]:
        """The loss as rows ``[beta][alpha]`` (one row for a 1-D slice)."""
        return self._rows(self.loss, "loss", len(self.axes.alpha))

    def accuracy_rows(self) -> list[list[float | None]] | None:
        """The accuracy as rows, or None when it was not asked."""
        return None if self.accuracy is None else self._rows(self.accuracy, "accuracy",
                                                              len(self.axes.alpha))
