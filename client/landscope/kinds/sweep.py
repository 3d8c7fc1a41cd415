"""The ``sweep`` kind: one claim of the notes' section 4 tested over variants and seeds.

The result is a verdict (``supported``, ``not_supported``, ``inconclusive``) with k/n seeds,
an effect size with a bootstrap interval, confound flags, and every measure per seed. See
``docs/kinds/sweep.md`` for each claim's source, measures and verdict rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._options import SweepOptions, SweepTrainOptions
from ._read import FromJson

__all__ = [
    "ClaimStatement",
    "SweepConfound",
    "SweepCurve",
    "SweepEffect",
    "SweepOptions",
    "SweepPair",
    "SweepPoint",
    "SweepResult",
    "SweepRun",
    "SweepTrainOptions",
    "SweepVariant",
]

Verdict = Literal["supported", "not_supported", "inconclusive"]


@dataclass(frozen=True)
class ClaimStatement(FromJson):
    """The claim tested.

    Attributes:
        text: the claim in words.
        source: the paper(s) and the section of THEORY.md it comes from.
    """

    text: str
    source: str


@dataclass(frozen=True)
class SweepEffect(FromJson):
    """An effect size over seeds.

    Attributes:
        name: what is measured (and at which variants).
        value: the median over seeds (None when nothing could be measured).
        interval: its percentile bootstrap interval ``(low, high)``.
        confidence: the interval's level (0.95).
    """

    name: str
    value: float | None
    interval: tuple[float | None, float | None]
    confidence: float


@dataclass(frozen=True)
class SweepConfound(FromJson):
    """A confound found in the runs.

    Attributes:
        name: ``diverged``, ``unmatched_loss``, ``unconverged_eigenvalues`` or
            ``pinned_at_2_over_eta`` (batch_size).
        blocking: True when it makes the verdict ``inconclusive``.
        detail: which runs, and what to change.
    """

    name: str
    blocking: bool
    detail: str


@dataclass(frozen=True)
class SweepPoint(FromJson):
    """batch_norm: smoothness along -g at one step of a run.

    Attributes:
        step: the training step.
        beta: max over the probe steps eta of ``|g(theta - eta g) - g| / (eta |g|)``.
        loss_range: max - min of the loss over ``theta - eta g``, eta in 0 and the probes.
        grad_norm: ``|g|`` there.
    """

    step: int
    beta: float | None
    loss_range: float | None
    grad_norm: float | None


@dataclass(frozen=True)
class SweepRun(FromJson):
    """One (variant, seed) run and its measures (fields of other claims are None/empty).

    Attributes:
        seed: the run's initialisation seed.
        diverged: the loss became non-finite or grew past ``divergence_factor``.
        steps_done: gradient-descent steps taken.
        initial_loss, final_loss: training loss at the start and the end.
        lr: edge_of_stability: eta.
        threshold: edge_of_stability: 2/eta.
        status: edge_of_stability: ``held``, ``not_reached``, ``above_band``, ``exceeded``,
            ``diverged`` or ``unmeasured``.
        lambda_max_last_third: mean lambda_max over the last third of the measurements.
        ratio: ``lambda_max_last_third / (2/eta)``.
        last_third_converged: every last-third Lanczos run met its tolerance.
        loss_increases: steps where the loss rose (non-monotone at the edge).
        sharpness_steps, sharpness, sharpness_converged: the lambda_max trace.
        losses: the loss before each step and after the last.
        beta, loss_range: batch_norm: medians over ``points``.
        points: batch_norm: the smoothness measured along the run.
        lambda_max, lambda_min: skip_connections: extreme Hessian eigenvalues at the end.
        eig_ratio: ``|lambda_min / lambda_max|``.
        eig_converged: both eigenvalues met the Lanczos tolerance.
        nonconvex_fraction: fraction of 1-D filter-normalised slices with negative curvature.
        nonconvex_slices: per slice, whether it was non-convex.
        slice_losses: per slice, the loss at ``slice_points`` evenly spaced points of
            [-1, 1].
        batch_size: batch_size: B of the run's SGD.
        target_loss: batch_size: the matched full-data loss the run trained to.
        matched: batch_size: the target was reached before the step cap.
        pinned: batch_size: lambda_max within 5% of (or above) 2/eta (a confound).
        epsilon_sharpness: batch_size, weight_decay: Keskar et al.'s epsilon-sharpness (a
            lower bound of the box maximum: L-BFGS-B from one random start).
        fn_curvature: batch_size, weight_decay: mean ``d^T H d`` over filter-normalised
            random directions; ``fn_curvatures`` per direction.
        trace, trace_method: weight_decay: ``tr(H)`` of the data loss, ``exact`` or
            ``hutchinson``.
        weight_decay: weight_decay: the run's decay strength.
        weight_norm: weight_decay: ``|theta|`` at the end.
    """

    seed: int
    diverged: bool
    steps_done: int
    initial_loss: float | None = None
    final_loss: float | None = None
    lr: float | None = None
    threshold: float | None = None
    status: str | None = None
    lambda_max_last_third: float | None = None
    ratio: float | None = None
    last_third_converged: bool | None = None
    loss_increases: int | None = None
    sharpness_steps: tuple[int, ...] = ()
    sharpness: tuple[float | None, ...] = ()
    sharpness_converged: tuple[bool, ...] = ()
    losses: tuple[float | None, ...] = ()
    beta: float | None = None
    loss_range: float | None = None
    points: tuple[SweepPoint, ...] = ()
    lambda_max: float | None = None
    lambda_min: float | None = None
    eig_ratio: float | None = None
    eig_converged: bool | None = None
    nonconvex_fraction: float | None = None
    nonconvex_slices: tuple[bool, ...] = ()
    slice_losses: tuple[tuple[float | None, ...], ...] = ()
    batch_size: int | None = None
    target_loss: float | None = None
    matched: bool | None = None
    pinned: bool | None = None
    epsilon_sharpness: float | None = None
    fn_curvature: float | None = None
    fn_curvatures: tuple[float | None, ...] = ()
    trace: float | None = None
    trace_method: str | None = None
    weight_decay: float | None = None
    weight_norm: float | None = None


@dataclass(frozen=True)
class SweepCurve(FromJson):
    """width_barriers: the loss sampled along a line, ordered by ``t``.

    Attributes:
        t: positions on [0, 1] (the two minima at 0 and 1).
        loss: the loss there.
    """

    t: tuple[float, ...] = ()
    loss: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class SweepPair(FromJson):
    """width_barriers: the linear barrier between two seeds' minima of one width.

    Attributes:
        seeds: the two seeds.
        raw_barrier: ``max_t L((1-t) a + t b) - max(L(a), L(b))`` (certified maximum).
        aligned_barrier: the lower of the raw and the weight-matched barrier (never above
            the raw one).
        matched_barrier: the barrier after permuting b's hidden units to match a.
        raw_resolution, aligned_resolution: certified margins above the barriers.
        raw_curve, aligned_curve: the samples of the raw and the aligned line.
    """

    seeds: tuple[int, int]
    raw_barrier: float | None
    aligned_barrier: float | None
    matched_barrier: float | None
    raw_resolution: float | None = None
    aligned_resolution: float | None = None
    raw_curve: SweepCurve | None = None
    aligned_curve: SweepCurve | None = None


@dataclass(frozen=True)
class SweepVariant(FromJson):
    """One variant of the base network (or one learning rate) and its runs.

    Attributes:
        name: e.g. ``lr=0.1`` or ``width x2``.
        rule: the rule that derived it from the base network, in words.
        params: the variant's parameters (``lr``; ``width``, ``hidden``, ``num_params``).
        runs: one per seed.
        pairs: width_barriers: barriers between seed pairs.
        held, exceeded: edge_of_stability: seeds held / exceeded at this rate.
    """

    name: str
    rule: str
    params: Mapping[str, Any]
    runs: tuple[SweepRun, ...]
    pairs: tuple[SweepPair, ...] = ()
    held: int | None = None
    exceeded: int | None = None


@dataclass(frozen=True)
class SweepResult(FromJson):
    """Result of ``sweep``.

    Attributes:
        claim: the claim tested.
        claim_statement: its text and source.
        verdict: ``supported``, ``not_supported`` or ``inconclusive``.
        verdict_rule: the rule that gave the verdict, in words.
        detail: one line per variant ("held on 3/3 seeds at lr=0.3 ...", "not reached at
            lr=0.01 (... ratio 0.42)").
        held: k, the seeds (width_barriers: seed pairs) holding the claim.
        seeds: n.
        effect: the effect size with its bootstrap interval.
        confounds: the confounds found.
        variants: every variant with every measure per seed.
        num_params, num_samples: of the base network and the data.
        raw_effect: width_barriers: the effect on raw (unaligned) barriers.
        spearman: width_barriers: rank correlation of width and aligned barrier;
            batch_size: of lr/B and lambda_max; weight_decay: of the decay and lambda_max.
        spearman_measures: batch_size, weight_decay: that rank correlation per measure.
        theory: predicted beside measured (free-form JSON).
    """

    claim: Literal["edge_of_stability", "width_barriers", "batch_norm", "skip_connections",
                   "batch_size", "weight_decay"]
    claim_statement: ClaimStatement
    verdict: Verdict
    verdict_rule: str
    detail: str
    held: int
    seeds: int
    effect: SweepEffect
    confounds: tuple[SweepConfound, ...]
    variants: tuple[SweepVariant, ...]
    num_params: int
    num_samples: int
    raw_effect: SweepEffect | None = None
    spearman: float | None = None
    spearman_measures: Mapping[str, float | None] = field(default_factory=dict)
    theory: Mapping[str, Any] = field(default_factory=dict)
