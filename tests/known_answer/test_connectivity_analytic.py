"""Known answers on analytic potentials: Müller-Brown and Himmelblau.

The path finders, the MST-first refinement and the merge tree run here exactly as for
networks, on a differentiable function of a flat vector. Reference minima and saddles
are the issue's numbers, re-derived below by Newton root-finding on the gradient
(scipy), independently of the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import root

from landscope_service.diagnostics.connectivity import (
    Objective,
    analyze_points,
    bezier_path,
    linear_path,
    minimize,
    neb_path,
)

DT = torch.float64

# --------------------------------------------------------------------- Müller-Brown
_A = (-200.0, -100.0, -170.0, 15.0)
_a = (-1.0, -1.0, -6.5, 0.7)
_b = (0.0, 0.0, 11.0, 0.6)
_c = (-10.0, -10.0, -6.5, 0.7)
_x0 = (1.0, 0.0, -0.5, -1.0)
_y0 = (0.0, 0.5, 1.5, 1.0)


def muller_brown(t: torch.Tensor) -> torch.Tensor:
    A, a, b, c = (torch.tensor(v, dtype=t.dtype, device=t.device) for v in (_A, _a, _b, _c))
    x0 = torch.tensor(_x0, dtype=t.dtype, device=t.device)
    y0 = torch.tensor(_y0, dtype=t.dtype, device=t.device)
    dx, dy = t[0] - x0, t[1] - y0
    return (A * torch.exp(a * dx * dx + b * dx * dy + c * dy * dy)).sum()


def _mb_np(v: np.ndarray) -> float:
    return float(muller_brown(torch.tensor(v, dtype=DT)))


def _critical(f, start):  # Newton root of the gradient, independent of the code under test
    def grad(v: np.ndarray) -> np.ndarray:
        x = torch.tensor(v, dtype=DT, requires_grad=True)
        (g,) = torch.autograd.grad(f(x), x)
        return g.numpy()

    r = root(grad, start, tol=1e-13)
    assert r.success
    return r.x, float(f(torch.tensor(r.x, dtype=DT)))


def test_muller_brown_reference_values_hold() -> None:
    mins = [(-0.558, 1.442), (0.623, 0.028), (-0.050, 0.467)]
    saddles = [(0.212, 0.293), (-0.822, 0.624)]
    vals = [_critical(muller_brown, s)[1] for s in mins + saddles]
    np.testing.assert_allclose(vals, [-146.70, -108.17, -80.77, -72.25, -40.66], atol=0.01)


@pytest.fixture(scope="module")
def mb_minima() -> list[torch.Tensor]:
    obj = Objective(muller_brown)
    starts = [(-0.5, 1.4), (0.6, 0.1), (0.0, 0.5)]
    out = []
    for s in starts:
        res = minimize(obj, torch.tensor(s, dtype=DT), optimizer="lbfgs", steps=20, lr=1.0)
        assert res.grad_norm < 1e-4
        out.append(res.theta)
    return out


def test_muller_brown_minima_by_training(mb_minima: list[torch.Tensor]) -> None:
    obj = Objective(muller_brown)
    vals = [float(obj.value(m)) for m in mb_minima]
    np.testing.assert_allclose(vals, [-146.70, -108.17, -80.77], atol=0.01)


@pytest.mark.parametrize("strategy", ["mst", "all"])
def test_muller_brown_n_lambda(mb_minima: list[torch.Tensor], strategy: str) -> None:
    obj = Objective(muller_brown)
    report, tree, _ = analyze_points(obj, mb_minima, methods=["neb"], strategy=strategy)
    lams = [-150, -120, -100, -75, -50, -30]
    assert [tree.n_lambda(x) for x in lams] == [0, 1, 2, 3, 2, 1]
    np.testing.assert_allclose(sorted(tree.merge_heights()), [-72.25, -40.66], atol=0.05)
    # Every bound is an upper bound: never below the true minimax barrier.
    assert report.bounds[0, 2] >= -40.6648435 - 1e-6
    assert report.bounds[1, 2] >= -72.2489401 - 1e-6
    assert report.mst_stable


def test_muller_brown_linear_bounds_are_loose_but_upper(mb_minima: list[torch.Tensor]) -> None:
    obj = Objective(muller_brown)
    a, _, c = mb_minima
    lin = linear_path(obj, a, c)
    bez = bezier_path(obj, a, c, seed=0)
    neb = neb_path(obj, a, c, seed=0)
    # The straight segment A-C climbs over the ridge (about +3.4); curved paths go lower.
    assert lin.barrier > 0.0
    assert bez.barrier < lin.barrier - 1.0
    assert neb.barrier == pytest.approx(-40.66, abs=0.05)
    for r in (lin, bez, neb):
        assert r.barrier >= -40.6648435 - 1e-6  # the minimax barrier bounds every path
        assert r.losses[0] == pytest.approx(float(obj.value(a)))
        assert r.losses[-1] == pytest.approx(float(obj.value(c)))


# --------------------------------------------------------------------- Himmelblau
def himmelblau(t: torch.Tensor) -> torch.Tensor:
    x, y = t[0], t[1]
    return (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2


HB_MINIMA = [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)]


def test_himmelblau_reference_values() -> None:
    saddles = [(3.385, 0.074), (0.087, 2.884), (-3.073, -0.081), (-0.128, -1.954)]
    vals = [_critical(himmelblau, s)[1] for s in saddles]
    # The 104.02 is 104.0152 rounded up; 13.31, 67.72, 178.34 hold.
    np.testing.assert_allclose(vals, [13.3119, 67.7192, 104.0152, 178.3372], atol=1e-3)


def test_himmelblau_merge_tree() -> None:
    obj = Objective(himmelblau)
    pts = [torch.tensor(p, dtype=DT) for p in HB_MINIMA]
    report, tree, losses = analyze_points(obj, pts, methods=["neb"], strategy="all")
    assert np.all(np.abs(losses) < 1e-9)
    np.testing.assert_allclose(tree.merge_heights(), [13.3119, 67.7192, 104.0152], atol=0.05)
    lams = [-1.0, 5.0, 20.0, 80.0, 150.0, 200.0]
    assert [tree.n_lambda(x) for x in lams] == [0, 4, 3, 2, 1, 1]
    # The fourth saddle (178.34) closes a loop: it never merges anything.
    assert len(tree.merges) == 3
    assert [m.height for m in tree.merges if m.height > 150.0] == []
    # Minimum 3 <-> minimum 4 (the pair across the 178.34 saddle): whatever path is found,
    # it cannot beat the minimax value 104.0152 (the route round the other saddles).
    b34 = report.bounds[2, 3]
    assert 104.0152 - 1e-3 <= b34 <= 178.34 + 0.5
    barcode = tree.barcode()
    assert sum(d is None for _, _, d in barcode) == 1


def test_himmelblau_mst_first_agrees_with_all_pairs() -> None:
    obj_all = Objective(himmelblau)
    pts = [torch.tensor(p, dtype=DT) for p in HB_MINIMA]
    rep_all, tree_all, _ = analyze_points(obj_all, pts, strategy="all")
    rep_mst, tree_mst, _ = analyze_points(Objective(himmelblau), pts, strategy="mst")
    grid = np.linspace(-5, 200, 83)
    assert [tree_all.n_lambda(x) for x in grid] == [tree_mst.n_lambda(x) for x in grid]
    assert len(rep_mst.refined) < len(rep_all.refined)
    assert rep_mst.num_grad_evals < rep_all.num_grad_evals
    assert math.isclose(max(tree_mst.merge_heights()), 104.0152, abs_tol=0.05)
