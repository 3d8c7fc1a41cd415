"""The ``minimizer_manifold`` kind: Cooper's zero-loss manifold, predicted vs measured.

For a network with P parameters fitted exactly to N points with r outputs, Cooper
(2018/2021) predicts a zero-loss manifold of dimension ``P - rN``; the job fits, measures
``P - rank(J)`` under an explicit tolerance, the Hessian nullity, and walks along the
manifold. See ``docs/kinds/minimizer_manifold.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ._options import MinimizerManifoldOptions
from ._read import FromJson

__all__ = [
    "CooperHypothesis",
    "CooperTheory",
    "ManifoldControlStep",
    "ManifoldDimension",
    "ManifoldFit",
    "ManifoldHessian",
    "ManifoldRank",
    "ManifoldRankGap",
    "ManifoldWalk",
    "MinimizerManifoldOptions",
    "MinimizerManifoldResult",
]

FitStatus = Literal["interpolated", "stalled", "step_budget_exhausted"]
_FIT_STATUSES = ("interpolated", "stalled", "step_budget_exhausted")


# ---------------------------------------------------------------- result parts
@dataclass(frozen=True)
class ManifoldFit(FromJson):
    """The fit to zero loss (Levenberg-Marquardt, float64).

    Attributes:
        method: ``"levenberg_marquardt"``.
        initial_loss, final_loss: mean squared error before and after.
        tolerance: the loss target.
        interpolated: ``final_loss <= tolerance``.
        status: ``interpolated``, ``stalled`` or ``step_budget_exhausted``.
        steps, max_steps, rejected_steps: Jacobians evaluated, the budget, trial steps
            rejected.
        final_damping: the last damping ``mu``.
        loss_history: loss after each accepted step (first and last 100 when longer).
        message: a sentence saying what happened (and why not, when it did not fit).
    """

    method: str
    initial_loss: float | None
    final_loss: float | None
    tolerance: float
    interpolated: bool
    status: FitStatus
    steps: int
    max_steps: int
    rejected_steps: int
    final_damping: float | None
    loss_history: tuple[float | None, ...]
    message: str


@dataclass(frozen=True)
class ManifoldRankGap(FromJson):
    """Where the rank cut falls.

    Attributes:
        index: the rank (number of singular values kept).
        sigma_above: smallest kept singular value (None when the rank is 0).
        sigma_below: largest cut singular value (None when none is cut).
        ratio: ``sigma_above / sigma_below`` (None when either is missing or 0).
        margin_above_threshold: ``sigma_above / threshold``.
    """

    index: int
    sigma_above: float | None
    sigma_below: float | None
    ratio: float | None
    margin_above_threshold: float | None


@dataclass(frozen=True)
class ManifoldRank(FromJson):
    """Numerical rank of the ``rN x P`` Jacobian at the fitted point.

    Attributes:
        rank: number of singular values above ``threshold``.
        route: ``"dense"`` or ``"gram"``.
        rule: the tolerance rule in words.
        rtol: relative tolerance; ``threshold = rtol * largest``.
        threshold: absolute threshold on singular values.
        num_singular_values: ``min(rN, P)``.
        largest, smallest: extreme singular values.
        full_row_rank: ``rank == rN``.
        gap: the gap at the cut.
        singular_values: all of them, descending (None when more than 1024; the
            ``singular_values.json`` artifact always has them).
    """

    rank: int
    route: str
    rule: str
    rtol: float
    threshold: float | None
    num_singular_values: int
    largest: float | None
    smallest: float | None
    full_row_rank: bool
    gap: ManifoldRankGap
    singular_values: tuple[float | None, ...] | None


@dataclass(frozen=True)
class ManifoldDimension(FromJson):
    """Predicted vs measured dimension of the zero-loss set.

    Attributes:
        predicted: ``P - rN`` (negative: generically no exact fit).
        measured: ``P - rank(J)`` at the fitted point (None without an exact fit).
        jacobian_nullity: ``P - rank(J)`` wherever the fit stopped.
        hessian_nullity: eigenvalues of the loss Hessian within tolerance of zero.
        agrees: ``measured == predicted`` (None without an exact fit).
        hessian_agrees: ``hessian_nullity == jacobian_nullity`` (None without a fit).
    """

    predicted: int
    measured: int | None
    jacobian_nullity: int
    hessian_nullity: int | None
    agrees: bool | None
    hessian_agrees: bool | None


@dataclass(frozen=True)
class ManifoldHessian(FromJson):
    """The loss Hessian at the fitted point.

    Attributes:
        method: ``"exact"`` (dense, P HVPs) or ``"gram"`` (``(2/(rN)) J^T J``).
        nullity: eigenvalues within ``tolerance`` of zero.
        tolerance: absolute tolerance on eigenvalues.
        rule: the rule in words.
        largest_eigenvalue: ``lambda_max``.
        smallest_eigenvalue: ``lambda_min`` (exact method only).
        residual_part_norm: ``||H - (2/(rN)) J^T J||_2`` (exact method only).
    """

    method: str
    nullity: int
    tolerance: float | None
    rule: str
    largest_eigenvalue: float | None
    smallest_eigenvalue: float | None
    residual_part_norm: float | None


@dataclass(frozen=True)
class ManifoldControlStep(FromJson):
    """One step of the walk's length orthogonal to null(J), from the fitted point.

    Attributes:
        step_length: its Euclidean length.
        loss_before, loss_after: loss at the fitted point and after the step.
        loss_rise: ``loss_after - loss_before``.
        tangent_loss_same_length: loss after the first tangent step, before retraction.
    """

    step_length: float
    loss_before: float | None
    loss_after: float | None
    loss_rise: float | None
    tangent_loss_same_length: float | None


@dataclass(frozen=True)
class ManifoldWalk(FromJson):
    """The walk along null(J) with Gauss-Newton retractions.

    Attributes:
        performed: whether a walk was made (not without an exact fit).
        reason: why it was not made or ended early (None otherwise).
        steps_requested, steps_done: walk steps asked for and completed.
        step_length: length of each step.
        path_length: summed distance between consecutive retracted points.
        displacement: distance from the fitted point to the last point.
        max_loss: largest loss over the retracted points.
        max_loss_before_retraction: largest loss right after a tangent step.
        max_retraction_correction: largest distance a retraction moved.
        max_retraction_steps: most Gauss-Newton steps a retraction took.
        within_tolerance: ``max_loss <= fit tolerance``.
        losses: loss at each retracted point (the fitted point first).
        control: the orthogonal control step.
    """

    performed: bool
    reason: str | None = None
    steps_requested: int = 0
    steps_done: int = 0
    step_length: float | None = None
    path_length: float | None = None
    displacement: float | None = None
    max_loss: float | None = None
    max_loss_before_retraction: float | None = None
    max_retraction_correction: float | None = None
    max_retraction_steps: int = 0
    within_tolerance: bool | None = None
    losses: tuple[float | None, ...] = ()
    control: ManifoldControlStep | None = None


@dataclass(frozen=True)
class CooperHypothesis(FromJson):
    """One hypothesis of the theorem, checked.

    Attributes:
        name: e.g. ``"smooth nonlinear activation"``.
        holds: True, False, or None when it could not be verified.
        detail: what was found.
    """

    name: str
    holds: bool | None
    detail: str


@dataclass(frozen=True)
class CooperTheory(FromJson):
    """The theory block: Cooper's theorem, its hypotheses, prediction vs measurement.

    Attributes:
        theorem: ``"Cooper 2018/2021"``.
        applies: every hypothesis of the theorem holds.
        hypotheses: each checked.
        predicted_dimension: ``P - rN``.
        measured_dimension: ``P - rank(J)`` at an exact fit, else None.
        agrees: predicted == measured (None without an exact fit).
        notes: explanations (why it does not apply, what was measured instead).
    """

    theorem: str
    applies: bool
    hypotheses: tuple[CooperHypothesis, ...]
    predicted_dimension: int
    measured_dimension: int | None
    agrees: bool | None
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class MinimizerManifoldResult(FromJson):
    """Result of ``minimizer_manifold``.

    Attributes:
        num_params: P; num_samples: N; num_outputs: r; num_equations: rN.
        input_dtype: dtype of the submitted problem; compute_dtype: ``"float64"``.
        device: where it ran.
        route: ``"dense"`` or ``"gram"``.
        fit, rank, dimension, hessian, walk, theory: the parts (see their classes).
    """

    num_params: int
    num_samples: int
    num_outputs: int
    num_equations: int
    input_dtype: str
    compute_dtype: str
    device: str
    route: str
    fit: ManifoldFit
    rank: ManifoldRank
    dimension: ManifoldDimension
    hessian: ManifoldHessian
    walk: ManifoldWalk
    theory: CooperTheory
