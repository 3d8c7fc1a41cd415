"""The ``minimizer_manifold`` kind: Cooper's zero-loss manifold, predicted vs measured.

For a network with P parameters fitted exactly to N points with r outputs, Cooper
(2018/2021) predicts a zero-loss manifold of dimension ``P - rN``; the job fits, measures
``P - rank(J)`` under an explicit tolerance, the Hessian nullity, and walks along the
manifold. See ``docs/kinds/minimizer_manifold.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from landscope._exceptions import InvalidResponseError

from ._json import bool_ as _bool
from ._json import has as _has
from ._json import int_ as _int
from ._json import num as _num
from ._json import num_list as _num_list
from ._json import obj as _obj
from ._json import opt_bool as _opt_bool
from ._json import opt_int as _opt_int
from ._json import opt_num as _opt_num
from ._json import opt_str as _opt_str
from ._json import str_ as _str
from ._options import MinimizerManifoldOptions

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
class ManifoldFit:
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ManifoldFit:
        """Build from ``result.fit``."""
        w = "result.fit"
        d = _obj(data, w)
        status = _str(d, "status", w)
        if status not in _FIT_STATUSES:
            raise InvalidResponseError(f"{w}.status has an unexpected value {status!r}.")
        return cls(
            method=_str(d, "method", w),
            initial_loss=_opt_num(d, "initial_loss", w),
            final_loss=_opt_num(d, "final_loss", w),
            tolerance=_num(d, "tolerance", w),
            interpolated=_bool(d, "interpolated", w),
            status=status,  # type: ignore[arg-type]
            steps=_int(d, "steps", w),
            max_steps=_int(d, "max_steps", w),
            rejected_steps=_int(d, "rejected_steps", w),
            final_damping=_opt_num(d, "final_damping", w),
            loss_history=_num_list(d, "loss_history", w),
            message=_str(d, "message", w),
        )


@dataclass(frozen=True)
class ManifoldRankGap:
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ManifoldRankGap:
        """Build from ``result.rank.gap``."""
        w = "result.rank.gap"
        d = _obj(data, w)
        return cls(
            index=_int(d, "index", w),
            sigma_above=_opt_num(d, "sigma_above", w),
            sigma_below=_opt_num(d, "sigma_below", w),
            ratio=_opt_num(d, "ratio", w),
            margin_above_threshold=_opt_num(d, "margin_above_threshold", w),
        )


@dataclass(frozen=True)
class ManifoldRank:
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ManifoldRank:
        """Build from ``result.rank``."""
        w = "result.rank"
        d = _obj(data, w)
        return cls(
            rank=_int(d, "rank", w),
            route=_str(d, "route", w),
            rule=_str(d, "rule", w),
            rtol=_num(d, "rtol", w),
            threshold=_opt_num(d, "threshold", w),
            num_singular_values=_int(d, "num_singular_values", w),
            largest=_opt_num(d, "largest", w),
            smallest=_opt_num(d, "smallest", w),
            full_row_rank=_bool(d, "full_row_rank", w),
            gap=ManifoldRankGap.from_json(_obj(_has(d, "gap", w), f"{w}.gap")),
            singular_values=None
            if d.get("singular_values") is None
            else _num_list(d, "singular_values", w),
        )


@dataclass(frozen=True)
class ManifoldDimension:
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ManifoldDimension:
        """Build from ``result.dimension``."""
        w = "result.dimension"
        d = _obj(data, w)
        return cls(
            predicted=_int(d, "predicted", w),
            measured=_opt_int(d, "measured", w),
            jacobian_nullity=_int(d, "jacobian_nullity", w),
            hessian_nullity=_opt_int(d, "hessian_nullity", w),
            agrees=_opt_bool(d, "agrees", w),
            hessian_agrees=_opt_bool(d, "hessian_agrees", w),
        )


@dataclass(frozen=True)
class ManifoldHessian:
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ManifoldHessian:
        """Build from ``result.hessian``."""
        w = "result.hessian"
        d = _obj(data, w)
        return cls(
            method=_str(d, "method", w),
            nullity=_int(d, "nullity", w),
            tolerance=_opt_num(d, "tolerance", w),
            rule=_str(d, "rule", w),
            largest_eigenvalue=_opt_num(d, "largest_eigenvalue", w),
            smallest_eigenvalue=_opt_num(d, "smallest_eigenvalue", w),
            residual_part_norm=_opt_num(d, "residual_part_norm", w),
        )


@dataclass(frozen=True)
class ManifoldControlStep:
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ManifoldControlStep:
        """Build from ``result.walk.control``."""
        w = "result.walk.control"
        d = _obj(data, w)
        return cls(
            step_length=_num(d, "step_length", w),
            loss_before=_opt_num(d, "loss_before", w),
            loss_after=_opt_num(d, "loss_after", w),
            loss_rise=_opt_num(d, "loss_rise", w),
            tangent_loss_same_length=_opt_num(d, "tangent_loss_same_length", w),
        )


@dataclass(frozen=True)
class ManifoldWalk:
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ManifoldWalk:
        """Build from ``result.walk``."""
        w = "result.walk"
        d = _obj(data, w)
        performed = _bool(d, "performed", w)
        reason = _opt_str(d, "reason", w)
        if not performed:
            return cls(performed=False, reason=reason)
        ctrl = d.get("control")
        return cls(
            performed=True,
            reason=reason,
            steps_requested=_int(d, "steps_requested", w),
            steps_done=_int(d, "steps_done", w),
            step_length=_num(d, "step_length", w),
            path_length=_opt_num(d, "path_length", w),
            displacement=_opt_num(d, "displacement", w),
            max_loss=_opt_num(d, "max_loss", w),
            max_loss_before_retraction=_opt_num(d, "max_loss_before_retraction", w),
            max_retraction_correction=_opt_num(d, "max_retraction_correction", w),
            max_retraction_steps=_int(d, "max_retraction_steps", w),
            within_tolerance=_opt_bool(d, "within_tolerance", w),
            losses=_num_list(d, "losses", w),
            control=None if ctrl is None else ManifoldControlStep.from_json(_obj(ctrl, w)),
        )


@dataclass(frozen=True)
class CooperHypothesis:
    """One hypothesis of the theorem, checked.

    Attributes:
        name: e.g. ``"smooth nonlinear activation"``.
        holds: True, False, or None when it could not be verified.
        detail: what was found.
    """

    name: str
    holds: bool | None
    detail: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CooperHypothesis:
        """Build from one item of ``result.theory.hypotheses``."""
        w = "result.theory.hypotheses[]"
        d = _obj(data, w)
        return cls(
            name=_str(d, "name", w),
            holds=_opt_bool(d, "holds", w),
            detail=_str(d, "detail", w),
        )


@dataclass(frozen=True)
class CooperTheory:
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CooperTheory:
        """Build from ``result.theory``."""
        w = "result.theory"
        d = _obj(data, w)
        hyps = _has(d, "hypotheses", w)
        notes = _has(d, "notes", w)
        if not isinstance(hyps, Sequence) or isinstance(hyps, str):
            raise InvalidResponseError(f"{w}.hypotheses should be a list, got {hyps!r:.200}.")
        if not isinstance(notes, Sequence) or not all(isinstance(n, str) for n in notes):
            raise InvalidResponseError(f"{w}.notes should be a list of strings.")
        return cls(
            theorem=_str(d, "theorem", w),
            applies=_bool(d, "applies", w),
            hypotheses=tuple(CooperHypothesis.from_json(_obj(h, w)) for h in hyps),
            predicted_dimension=_int(d, "predicted_dimension", w),
            measured_dimension=_opt_int(d, "measured_dimension", w),
            agrees=_opt_bool(d, "agrees", w),
            notes=tuple(str(n) for n in notes),
        )


@dataclass(frozen=True)
class MinimizerManifoldResult:
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MinimizerManifoldResult:
        """Build from the job's ``result`` object.

        Raises:
            InvalidResponseError: a field is missing or has the wrong type.
        """
        w = "result"
        d = _obj(data, w)
        return cls(
            num_params=_int(d, "num_params", w),
            num_samples=_int(d, "num_samples", w),
            num_outputs=_int(d, "num_outputs", w),
            num_equations=_int(d, "num_equations", w),
            input_dtype=_str(d, "input_dtype", w),
            compute_dtype=_str(d, "compute_dtype", w),
            device=_str(d, "device", w),
            route=_str(d, "route", w),
            fit=ManifoldFit.from_json(_obj(_has(d, "fit", w), "result.fit")),
            rank=ManifoldRank.from_json(_obj(_has(d, "rank", w), "result.rank")),
            dimension=ManifoldDimension.from_json(
                _obj(_has(d, "dimension", w), "result.dimension")
            ),
            hessian=ManifoldHessian.from_json(_obj(_has(d, "hessian", w), "result.hessian")),
            walk=ManifoldWalk.from_json(_obj(_has(d, "walk", w), "result.walk")),
            theory=CooperTheory.from_json(_obj(_has(d, "theory", w), "result.theory")),
        )
