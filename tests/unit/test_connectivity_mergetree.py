"""Union-find merge tree against networkx, and the MST-first refinement driver."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from landscope_service.diagnostics.connectivity import (
    PairOutcome,
    bottleneck_matrix,
    build_merge_tree,
    default_lambda_grid,
    minimum_spanning_edges,
    refine_barriers,
)


def _random_instance(seed: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    losses = rng.normal(size=m)
    raw = rng.uniform(0, 3, size=(m, m))
    B = np.maximum(np.triu(raw, 1) + np.triu(raw, 1).T, np.maximum.outer(losses, losses))
    # A few missing edges (no path found) and exact ties.
    for _ in range(m // 3):
        i, j = rng.choice(m, 2, replace=False)
        B[i, j] = B[j, i] = np.inf
    np.fill_diagonal(B, losses)
    return losses, B


def _nx_graph(losses: np.ndarray, B: np.ndarray) -> nx.Graph:
    g = nx.Graph()
    g.add_nodes_from(range(len(losses)))
    for i in range(len(losses)):
        for j in range(i + 1, len(losses)):
            if np.isfinite(B[i, j]):
                g.add_edge(i, j, weight=float(B[i, j]))
    return g


@pytest.mark.parametrize("seed", range(8))
def test_bottleneck_equals_networkx_mst(seed: int) -> None:
    m = 4 + seed
    losses, B = _random_instance(seed, m)
    t = nx.minimum_spanning_tree(_nx_graph(losses, B))
    ref = np.full((m, m), np.inf)
    for i in range(m):
        ref[i, i] = losses[i]
        for j in range(m):
            if i != j and nx.has_path(t, i, j):
                path = nx.shortest_path(t, i, j)
                ref[i, j] = max(t[u][v]["weight"] for u, v in itertools.pairwise(path))
    np.testing.assert_allclose(bottleneck_matrix(losses, B), ref)
    ours = sorted(w for w, _, _ in minimum_spanning_edges(losses, B))
    theirs = sorted(d["weight"] for _, _, d in t.edges(data=True))
    np.testing.assert_allclose(ours, theirs)


@pytest.mark.parametrize("seed", range(8))
def test_n_lambda_equals_threshold_graph_components(seed: int) -> None:
    m = 5 + seed
    losses, B = _random_instance(100 + seed, m)
    tree = build_merge_tree(losses, B, threshold=0.0)
    for lam in np.linspace(losses.min() - 0.5, 3.5, 41):
        g = nx.Graph()
        g.add_nodes_from(i for i in range(m) if losses[i] <= lam)
        g.add_edges_from((i, j) for i in range(m) for j in range(i + 1, m) if B[i, j] <= lam)
        comps = sorted(sorted(c) for c in nx.connected_components(g))
        assert tree.n_lambda(lam) == len(comps)
        assert sorted(tree.components(lam)) == comps


def test_barcode_elder_rule_and_noise_threshold() -> None:
    losses = [0.0, 0.5, 0.0, 0.999]
    B = np.full((4, 4), np.inf)
    B[0, 1] = 2.0  # minimum 1 (birth 0.5) dies at 2.0
    B[0, 2] = 3.0  # one of two global minima dies at 3.0
    B[2, 3] = 1.0  # minimum 3 (birth 0.999) dies at 1.0: persistence 1e-3
    B = np.minimum(B, B.T)
    tree = build_merge_tree(losses, B, threshold=0.0)
    bars = {i: (b, d) for i, b, d in tree.barcode()}
    assert bars[3] == (0.999, 1.0) and bars[1] == (0.5, 2.0)
    assert bars[0][1] is None and bars[2][1] == 3.0
    lams = (-1, 0.0, 0.6, 0.9995, 1.5, 2.5, 3.0)
    assert [tree.n_lambda(x) for x in lams] == [0, 2, 3, 4, 3, 2, 1]
    # scale = 3 - 0 = 3; tau = 1e-3 makes the 1e-3 bar (< 3e-3) noise, merged at birth.
    noisy = build_merge_tree(losses, B, threshold=1e-3)
    assert noisy.n_lambda(0.9995) == 3 and noisy.n_lambda(0.9995, effective=False) == 4
    assert [m.noise for m in noisy.merges] == [True, False, False]
    # Both components at 2.5 hold a global minimum (no spurious valley), at 0.6 one doesn't.
    assert noisy.contains_global_min(2.5) == [True, True]
    assert noisy.contains_global_min(0.6) == [True, True, False]
    js = noisy.to_json()
    assert js["barcode"][0]["death"] is None and len(js["merges"]) == 3


def test_input_validation_and_grid() -> None:
    with pytest.raises(ValueError, match="Shape mismatch"):
        build_merge_tree([0.0, 1.0], np.zeros((3, 3)))
    with pytest.raises(ValueError, match="threshold"):
        build_merge_tree([0.0, 1.0], np.zeros((2, 2)), threshold=-1)
    grid = default_lambda_grid([0.0, 1.0], [[0.0, 2.0], [2.0, 1.0]], num=5)
    assert grid[0] < 0.0 and grid[-1] > 2.0 and len(grid) == 5


def _fake_fns(true_B: np.ndarray, linear_B: np.ndarray, calls: list[list[tuple[int, int]]]):
    def cheap(pairs):
        return [[PairOutcome(i, j, "linear", float(linear_B[i, j]), 10, 0)] for i, j in pairs]

    def refine(pairs, targets=None):
        calls.append(list(pairs))
        return [[PairOutcome(i, j, "neb", float(true_B[i, j]), 50, 1000)] for i, j in pairs]

    return cheap, refine


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("spread", [0.0, 1.5])
def test_mst_first_refinement_against_all_pairs(seed: int, spread: float) -> None:
    rng = np.random.default_rng(seed)
    m = 8
    losses = rng.uniform(0, 0.1, size=m)
    pts = rng.normal(size=(m, 2))
    floor = np.maximum.outer(losses, losses)
    true_B = floor + np.linalg.norm(pts[:, None] - pts[None], axis=2)
    # Loose upper bounds: the linear excess over the endpoints is 2 to 2 + spread times
    # the optimised one.
    factor = 2.0 + spread * rng.uniform(size=(m, m))
    linear_B = floor + (true_B - floor) * np.minimum(factor, factor.T)
    calls: list[list[tuple[int, int]]] = []
    rep_mst = refine_barriers(losses, *_fake_fns(true_B, linear_B, calls), strategy="mst")
    rep_all = refine_barriers(losses, *_fake_fns(true_B, linear_B, []), strategy="all")
    grid = np.linspace(0, 6, 200)
    n_mst = [build_merge_tree(losses, rep_mst.bounds, threshold=0).n_lambda(x) for x in grid]
    n_all = [build_merge_tree(losses, rep_all.bounds, threshold=0).n_lambda(x) for x in grid]
    # Fewer refinements can only leave bounds higher, so counts can only be higher ...
    assert all(a >= b for a, b in zip(n_mst, n_all, strict=True))
    if spread == 0.0:
        # ... and with a constant linear/optimised ratio the prediction is exact: equal.
        assert n_mst == n_all
        assert len(rep_mst.refined) < len(rep_all.refined) == 28
    assert rep_mst.mst_stable
    assert rep_mst.num_grad_evals == 1000 * len(rep_mst.refined)
    assert len(calls) == rep_mst.rounds >= 1
    only_tree = refine_barriers(
        losses, *_fake_fns(true_B, linear_B, []), strategy="mst", beyond_mst=False
    )
    assert len(only_tree.refined) <= len(rep_mst.refined) and only_tree.mst_stable


def test_refinement_budget_and_none() -> None:
    rng = np.random.default_rng(0)
    losses = rng.uniform(0, 0.1, size=6)
    true_B = np.maximum.outer(losses, losses) + 1.0
    linear_B = true_B + 1.0
    rep_b = refine_barriers(
        losses, *_fake_fns(true_B, linear_B, []), strategy="mst", budget_pairs=3
    )
    assert len(rep_b.refined) == 3 and rep_b.budget_exhausted and not rep_b.mst_stable
    rep_n = refine_barriers(losses, *_fake_fns(true_B, linear_B, []), strategy="none")
    assert rep_n.refined == [] and np.array_equal(rep_n.bounds, rep_n.cheap)
    with pytest.raises(ValueError, match="strategy"):
        refine_barriers(losses, *_fake_fns(true_B, linear_B, []), strategy="some")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="budget_pairs"):
        refine_barriers(losses, *_fake_fns(true_B, linear_B, []), budget_pairs=-1)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("spread", [0.0, 1.5, 20.0])
def test_exact_refinement_equals_all_pairs(seed: int, spread: float) -> None:
    """strategy="exact" stops only when no unrefined pair can lower a merge height (its
    lower bound max(L_i, L_j) is not below the height), so its merge heights and N_lambda
    equal those of refining every pair, whatever the linear bounds are."""
    rng = np.random.default_rng(100 + seed)
    m = 8
    losses = rng.uniform(0, 0.1, size=m)
    pts = rng.normal(size=(m, 2))
    floor = np.maximum.outer(losses, losses)
    true_B = floor + np.linalg.norm(pts[:, None] - pts[None], axis=2)
    factor = 2.0 + spread * rng.uniform(size=(m, m))
    linear_B = floor + (true_B - floor) * np.minimum(factor, factor.T)
    # The trap that fools the optimistic prediction: the pair whose straight line is the
    # worst of all has the lowest optimised barrier.
    i, j = 0, 1
    linear_B[i, j] = linear_B[j, i] = float(linear_B.max()) * 3
    true_B[i, j] = true_B[j, i] = floor[i, j] + 1e-3
    rep_exact = refine_barriers(losses, *_fake_fns(true_B, linear_B, []), strategy="exact")
    rep_all = refine_barriers(losses, *_fake_fns(true_B, linear_B, []), strategy="all")
    exact_h = bottleneck_matrix(losses, rep_exact.bounds)
    all_h = bottleneck_matrix(losses, rep_all.bounds)
    np.testing.assert_allclose(exact_h, all_h, rtol=0, atol=1e-12)
    assert rep_exact.mst_stable and len(rep_exact.refined) <= 28
    assert (i, j) in rep_exact.refined


def test_noise_level_ignores_straight_lines_and_far_minima() -> None:
    from landscope_service.diagnostics.connectivity import noise_level

    losses = [0.0, 0.1, 0.2]
    B = np.array([[0.0, 1.0, 1000.0], [1.0, 0.1, 1.1], [1000.0, 1.1, 0.2]])
    # Refined pairs (0, 1) and (1, 2) carry the merges; (0, 2)'s straight line is 1000.
    tol, rule = noise_level(losses, B, [(0, 1), (1, 2)], threshold=1e-2)
    assert tol == pytest.approx(1e-2 * 1.1) and rule["set_by"] == "resolved_spread"
    # An unrefined merge (a straight-line bound) does not count as resolved.
    tol2, _ = noise_level(losses, B, [(0, 1)], threshold=1e-2)
    assert tol2 == pytest.approx(1e-2 * 1.0)
    # The zero-output loss floors it; an absolute tolerance replaces the rule.
    tol3, rule3 = noise_level(losses, B, [(0, 1), (1, 2)], threshold=1e-2, loss_scale=100.0)
    assert tol3 == pytest.approx(0.1) and rule3["set_by"] == "loss_scale"
    tol4, rule4 = noise_level(losses, B, [], threshold=1e-2, abs_tol=0.5)
    assert tol4 == 0.5 and rule4["rule"] == "absolute"
    with pytest.raises(ValueError, match="noise_tol"):
        noise_level(losses, B, [], threshold=1e-2, abs_tol=-1.0)


def test_raw_and_effective_merge_heights() -> None:
    tree = build_merge_tree([0.0, 0.5], [[0.0, 0.6], [0.6, 0.5]], tolerance=0.2)
    assert tree.merge_heights() == [0.6]  # barrier heights, never lowered
    assert tree.merge_heights(effective=True) == [0.5]  # noise merge: the younger birth
    assert tree.n_lambda(0.55) == 1 and tree.n_lambda(0.55, effective=False) == 2
    assert tree.to_json()["noise_level"] == 0.2


def test_closure_matrix_best_known_bounds() -> None:
    from landscope_service.diagnostics.connectivity.runner import closure_matrix

    losses = [0.0, 0.0, 0.0]
    B = np.array([[0.0, 1.0, 5.0], [1.0, 0.0, 2.0], [5.0, 2.0, 0.0]])
    closed, src = closure_matrix(losses, B)
    assert closed[0, 2] == 2.0 and src[0][2] == "chain"  # 0 -> 1 -> 2 stays below 2
    assert closed[0, 1] == 1.0 and src[0][1] == "direct"
    assert src[1][1] == "minimum"
    np.testing.assert_array_equal(closed, bottleneck_matrix(losses, B))


def test_theory_verdicts_never_refute_from_upper_bounds() -> None:
    from landscope_service.diagnostics.connectivity.theory import verdict

    assert verdict(True) == "confirmed"
    assert verdict(False) == "not confirmed at this resolution"
    assert verdict(False, contradicted=True) == "contradicted"


def test_refinement_history_open_levels_close() -> None:
    rng = np.random.default_rng(7)
    m = 7
    losses = rng.uniform(0, 0.1, size=m)
    pts = rng.normal(size=(m, 2))
    floor = np.maximum.outer(losses, losses)
    true_B = floor + np.linalg.norm(pts[:, None] - pts[None], axis=2)
    linear_B = floor + 3 * (true_B - floor)
    rep = refine_barriers(losses, *_fake_fns(true_B, linear_B, []), strategy="exact")
    hist = rep.history
    assert hist[0]["round"] == 0 and len(hist) == rep.rounds + 1
    assert [h["pairs_refined"] for h in hist] == sorted(h["pairs_refined"] for h in hist)
    assert hist[-1]["open_levels"] == []  # exact stops when nothing can still change
    assert hist[0]["open_levels"]  # the straight-line tree could still move
    final = sorted(w for w, _, _ in minimum_spanning_edges(losses, rep.bounds))
    assert sorted(hist[-1]["merge_heights"]) == pytest.approx(final)


def test_plots_render_noise_merges_and_log_profiles() -> None:
    from landscope_service.diagnostics.connectivity import merge_tree_png, path_profiles_png

    tree = build_merge_tree(
        [0.0, 1e-6, 0.5], [[0.0, 1e-5, 1.0], [1e-5, 1e-6, 1.0], [1.0, 1.0, 0.5]],
        tolerance=1e-3,
    )
    assert [m.noise for m in tree.merges] == [True, False]
    png = merge_tree_png(tree)
    assert png.startswith(b"\x89PNG")
    ts = [0.0, 0.5, 1.0]
    profiles = [("0-1 linear", ts, [0.0, 0.9, 1e-6]), ("0-1 neb", ts, [0.0, 1e-5, 1e-6]),
                ("0-1 aligned neb", ts, [0.0, 1e-9, 1e-6])]
    for log in (None, True, False):
        assert path_profiles_png(profiles, log=log).startswith(b"\x89PNG")
