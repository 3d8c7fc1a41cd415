"""Low paths between two points of a loss landscape, and the highest loss along them.

The barrier of a path ``gamma: [0, 1] -> R^P`` from ``a`` to ``b`` is
``max_t f(gamma(t))``. For any path it is an upper bound on the minimax barrier

    B(a, b) = min over paths gamma of max_t f(gamma(t)),

so better path finders give tighter bounds (THEORY.md, section 1), provided the maximum
along the path is found: every finder here reports a certified maximum with its
resolution (:mod:`.profile`). Three finders, all on an :class:`~.objective.Objective`
(any differentiable ``f: R^P -> R`` of a flat vector, so analytic test functions and
networks share this code), one module each:

* :func:`linear_path` / :func:`linear_paths` (here): the straight segment
  ``(1 - t) a + t b`` (Goodfellow et al. 2015), many pairs in one batch;
* :func:`.bezier.bezier_path`: the trained quadratic Bezier curve (Garipov et al. 2018);
* :func:`.neb.neb_path` / :func:`.neb.neb_paths`: the adaptive nudged elastic band
  (Draxler et al. 2018), many pairs in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from .bezier import BezierConfig, bezier_path
from .neb import NEBConfig, neb_path, neb_paths
from .objective import Objective
from .profile import LinearConfig, LineCurve, PathResult, certify_profiles, result_from

__all__ = [
    "BezierConfig",
    "LinearConfig",
    "NEBConfig",
    "PathResult",
    "bezier_path",
    "linear_path",
    "linear_paths",
    "neb_path",
    "neb_paths",
]


def linear_paths(
    obj: Objective,
    pairs: Sequence[tuple[Tensor, Tensor]],
    config: LinearConfig | None = None,
) -> list[PathResult]:
    """Certified loss maxima along the straight segments of many pairs, one batch a round."""
    for a, b in pairs:
        if a.ndim != 1 or a.shape != b.shape:
            raise ValueError(
                f"Shape mismatch: expected two vectors of equal shape (P,), got "
                f"{tuple(a.shape)} and {tuple(b.shape)}."
            )
    if not pairs:
        return []
    cfg = config or LinearConfig()
    certs = certify_profiles(obj, [LineCurve(a, b) for a, b in pairs], cfg, like=pairs[0][0])
    return [result_from("linear", c, 0, int(c.ts.shape[0]), None) for c in certs]


def linear_path(
    obj: Objective, a: Tensor, b: Tensor, config: LinearConfig | None = None
) -> PathResult:
    """Certified loss maximum along the straight segment ``(1 - t) a + t b``.

    Example:
        For ``f(x) = (x^2 - 1)^2`` in one dimension, ``a = -1``, ``b = 1``, the
        barrier is ``f(0) = 1`` (a sample when ``num_points`` is odd; resolution 0).
    """
    return linear_paths(obj, [(a, b)], config)[0]
