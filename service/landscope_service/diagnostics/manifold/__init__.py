"""Minimizer-manifold diagnostic (Cooper 2018/2021; THEORY.md section 2).

Fit to zero squared loss (Levenberg-Marquardt in float64), the numerical rank of the
``rN x P`` Jacobian (dense SVD, or the Gram matrix ``J J^T`` built from blocks), the
predicted ``P - rN`` against the measured ``P - rank(J)`` and the Hessian nullity, and a
walk along the zero set.
"""

from .fit import FitResult, FitStatus, levenberg_marquardt
from .jacobian import GramSide, ResidualFunction, rows_per_block
from .plots import singular_value_plot
from .rank import (
    EPS64,
    HessianNullity,
    Linearization,
    RankResult,
    Route,
    default_rtol,
    hessian_nullity,
    numerical_rank,
)
from .runner import DEFAULT_OPTIONS, choose_route, run_minimizer_manifold
from .theory import ActivationFacts, activation_facts, distinct_points, theory_block
from .walk import ControlStep, RetractResult, WalkResult, retract, walk_manifold

__all__ = [
    "DEFAULT_OPTIONS",
    "EPS64",
    "ActivationFacts",
    "ControlStep",
    "FitResult",
    "FitStatus",
    "GramSide",
    "HessianNullity",
    "Linearization",
    "RankResult",
    "ResidualFunction",
    "RetractResult",
    "Route",
    "WalkResult",
    "activation_facts",
    "choose_route",
    "default_rtol",
    "distinct_points",
    "hessian_nullity",
    "levenberg_marquardt",
    "numerical_rank",
    "retract",
    "rows_per_block",
    "run_minimizer_manifold",
    "singular_value_plot",
    "theory_block",
    "walk_manifold",
]
