"""The ``level_set_connectivity`` kind: minima, paths, barriers, N_lambda, merge tree.

Several minima (given as weight blobs or trained by the service from seeds), the
lowest paths found between them (AutoNEB, Bezier), the barrier of each pair (an upper
bound on the minimax barrier), and from those the number N_lambda of components of
each level set ``{theta : L(theta) <= lambda}`` holding the minima, the merge tree (H0
barcode) and the theorems of THEORY.md section 1 beside the measurement. See
``docs/kinds/level_set_connectivity.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._options import (
    BezierOptions,
    LevelSetConnectivityOptions,
    LinearOptions,
    NEBOptions,
    PathsOptions,
    RefineOptions,
    TrainOptions,
)
from ._read import FromJson

__all__ = [
    "BezierOptions",
    "ConnectivityMinimum",
    "ConnectivitySpace",
    "ConnectivityTheory",
    "LevelSetConnectivityOptions",
    "LevelSetConnectivityResult",
    "LinearOptions",
    "MergeEvent",
    "MergeTree",
    "NEBOptions",
    "PairBarrier",
    "PathOptions",
    "PathsOptions",
    "PersistenceBar",
    "ProfileOptions",
    "RefineOptions",
    "Refinement",
    "RoundSnapshot",
    "TheoremCheck",
    "TrainOptions",
]

OptimizerName = Literal["adam", "sgd", "lbfgs"]
PathMethod = Literal["neb", "bezier"]
Strategy = Literal["exact", "mst", "all", "none"]
Space = Literal["parameter", "permutation"]
Verdict = Literal["confirmed", "not confirmed at this resolution", "contradicted"]

ProfileOptions = LinearOptions
"""The earlier name of :class:`LinearOptions` (``paths.linear``)."""
PathOptions = PathsOptions
"""The earlier name of :class:`PathsOptions` (``paths``)."""


# ---------------------------------------------------------------- results
@dataclass(frozen=True)
class ConnectivityMinimum(FromJson):
    """One minimum: where it came from, its full-data loss and gradient norm."""

    index: int
    source: Literal["given", "trained"]
    blob: str | None
    seed: int | None
    loss: float
    grad_norm: float


@dataclass(frozen=True)
class MergeEvent(FromJson):
    """An MST edge seen as the merge of two components (elder rule)."""

    height: float
    effective_height: float
    edge: tuple[int, int]
    survivor: int
    absorbed: int
    persistence: float
    noise: bool
    members: tuple[int, ...]


@dataclass(frozen=True)
class PersistenceBar(FromJson):
    """An H0 bar: a minimum's component is born at its loss and dies at a merge."""

    minimum: int
    birth: float
    death: float | None  # None: never dies (the lowest component)


@dataclass(frozen=True)
class MergeTree(FromJson):
    """Merge tree (disconnectivity graph) and barcode of the minima."""

    threshold: float
    scale: float | None
    merges: tuple[MergeEvent, ...]
    barcode: tuple[PersistenceBar, ...]
    noise_level: float | None = None


@dataclass(frozen=True)
class RoundSnapshot(FromJson):
    """The merge tree after one refinement round.

    Attributes:
        round: the round (0: the straight-line bounds only).
        pairs_refined: pairs refined so far.
        merge_heights: merge heights so far (minimum-spanning-tree edges).
        merge_edges: their pairs.
        noise_level: the noise level then.
        open_levels: ``[lower, upper)`` level intervals where a merge can still move
            down by more than the noise level (None for the heuristic ``mst``).
    """

    round: int
    pairs_refined: int
    merge_heights: tuple[float, ...]
    merge_edges: tuple[tuple[int, int], ...]
    noise_level: float
    open_levels: tuple[tuple[float, float], ...] | None


@dataclass(frozen=True)
class Refinement(FromJson):
    """Which pairs were given optimised paths, and the work spent."""

    strategy: str
    pairs_total: int
    pairs_refined: int
    refined_pairs: tuple[tuple[int, int], ...]
    rounds: int
    mst_stable: bool
    budget_exhausted: bool
    num_loss_evals: int
    num_grad_evals: int
    rounds_log: tuple[RoundSnapshot, ...] = ()


@dataclass(frozen=True)
class PairBarrier(FromJson):
    """The best barrier found for a pair, its method, and the linear bound."""

    i: int
    j: int
    barrier: float | None
    method: str
    linear: float | None
    refined: bool
    resolution: float | None = None
    bracketed: bool | None = None


@dataclass(frozen=True)
class ConnectivitySpace(FromJson):
    """Barriers and level-set counts in one space (parameters, or modulo permutation).

    Attributes:
        barriers: ``M x M`` best known upper bound of every pair's minimax barrier: its
            own path's certified maximum or the minimax through a chain of pairs
            (ultrametric closure); diagonal: the minima's losses; None: no path.
        n_lambda: N_lambda on ``lambda_grid`` (noise merges removed).
        n_lambda_raw: the same without the persistence threshold.
        components: per lambda, the minima of each component.
        contains_global_min: per lambda, whether each component holds a lowest minimum.
        merge_heights: the merges' barrier heights (MST edges), never noise-lowered.
        merge_tree: merges and barcode.
        refinement: refinement report.
        pairs: best barrier per pair.
        barriers_aligned: modulo-permutation space only: the barriers of the aligned
            pairs alone (``barriers`` is the smaller of these and parameter space).
        barrier_source: per pair, ``"direct"`` (its own path is the best bound),
            ``"chain"`` (a chain through other minima is lower) or ``"minimum"``.
        barriers_direct: each pair's own best path bound.
        barriers_linear: the straight-line bounds.
        merge_heights_effective: merge heights with noise merges lowered to the younger
            minimum's loss (what ``n_lambda`` counts).
        noise_level: merges with a smaller persistence count as noise.
        noise_rule: how the noise level was set (absolute, or relative to the resolved
            spread with the zero-output loss floor).
    """

    barriers: tuple[tuple[float | None, ...], ...]
    n_lambda: tuple[int, ...]
    n_lambda_raw: tuple[int, ...]
    components: tuple[tuple[tuple[int, ...], ...], ...]
    contains_global_min: tuple[tuple[bool, ...], ...]
    merge_heights: tuple[float | None, ...]
    merge_tree: MergeTree
    refinement: Refinement
    pairs: tuple[PairBarrier, ...]
    barriers_aligned: tuple[tuple[float | None, ...], ...] | None = None
    barrier_source: tuple[tuple[str | None, ...], ...] | None = None
    barriers_direct: tuple[tuple[float | None, ...], ...] | None = None
    barriers_linear: tuple[tuple[float | None, ...], ...] | None = None
    merge_heights_effective: tuple[float | None, ...] | None = None
    noise_level: float | None = None
    noise_rule: Mapping[str, Any] | None = None


    def _losses(self) -> list[float]:
        out = []
        for k, row in enumerate(self.barriers):
            v = row[k]
            out.append(float("inf") if v is None else v)
        return out

    def _union(self, lam: float, effective: bool) -> tuple[dict[int, int], list[int]]:
        parent = {i: i for i in range(len(self.barriers))}

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for m in self.merge_tree.merges:
            h = m.effective_height if effective else m.height
            if h <= lam:  # the lowest minima of the merging components
                parent[find(m.survivor)] = find(m.absorbed)
        alive = [i for i, loss in enumerate(self._losses()) if loss <= lam]
        return {i: find(i) for i in alive}, alive

    def n_lambda_at(self, lam: float, *, effective: bool = True) -> int:
        """N_lambda at any level, exactly, from the merge tree (not only on the grid)."""
        roots, _ = self._union(lam, effective)
        return len(set(roots.values()))

    def components_at(self, lam: float, *, effective: bool = True) -> list[list[int]]:
        """Minima of each component of the level set at ``lam``."""
        roots, alive = self._union(lam, effective)
        groups: dict[int, list[int]] = {}
        for i in alive:
            groups.setdefault(roots[i], []).append(i)
        return sorted(sorted(g) for g in groups.values())

    def barrier(self, i: int, j: int) -> float | None:
        """Upper bound on the minimax barrier between minima ``i`` and ``j``."""
        return self.barriers[i][j]


@dataclass(frozen=True)
class TheoremCheck(FromJson):
    """A theorem of THEORY.md section 1 beside its measured counterpart.

    Attributes:
        statement: the theorem in one sentence.
        applies: its hypotheses hold for this architecture and loss.
        hypotheses: each hypothesis as checked (and the quantities in it).
        predictions: the theorem's predictions (keys such as ``predicted_n_lambda``,
            ``predicted_excess_scale``, ``predicts_no_spurious_valleys``).
        measured: the measured counterparts.
        agrees: True when the measurement confirms the prediction, else None (measured
            counts are upper bounds: they cannot refute it).
        verdict: ``"confirmed"``, ``"not confirmed at this resolution"`` or
            ``"contradicted"`` (None where nothing is predicted or checked).
    """

    statement: str
    applies: bool
    hypotheses: Mapping[str, Any] = field(metadata={"missing": {}})
    predictions: Mapping[str, Any] = field(metadata={"rest": True})  # every other key
    measured: Mapping[str, Any]
    agrees: bool | None
    verdict: Verdict | None = None


@dataclass(frozen=True)
class ConnectivityTheory(FromJson):
    """The theory block: architecture facts and four theorem checks."""

    architecture: Mapping[str, Any]
    note: str
    freeman_bruna_linear: TheoremCheck
    freeman_bruna_relu: TheoremCheck
    two_layer_relu_scale: TheoremCheck
    quadratic_width: TheoremCheck
    global_min_loss: float | None
    noise_level: float | None = None


@dataclass(frozen=True)
class LevelSetConnectivityResult(FromJson):
    """Result of ``level_set_connectivity``.

    Attributes:
        num_minima: M.
        minima: each minimum's origin, loss and gradient norm.
        barriers_are_upper_bounds: always True: a path's certified maximum
            (``barrier + resolution``) bounds the minimax barrier from above.
        barrier_note: that statement in words.
        guarantee: exactly what the numbers guarantee (the curvature estimate between
            samples included).
        loss: the loss (PyTorch mean reduction).
        methods: optimised path finders used.
        lambda_grid: the levels lambda.
        persistence_threshold: relative noise threshold of merges.
        parameter_space: barriers, N_lambda, components, merge tree in parameter space.
        modulo_permutation: the same modulo hidden-unit permutations (None unless
            ``align`` was on and the architecture allows it).
        alignment: ``{"requested", "done", "error"}``.
        work: gradient and loss evaluations spent on paths.
        theory: the theory block.
    """

    num_minima: int
    minima: tuple[ConnectivityMinimum, ...]
    barriers_are_upper_bounds: bool
    barrier_note: str
    loss: str
    methods: tuple[str, ...]
    lambda_grid: tuple[float, ...]
    persistence_threshold: float
    parameter_space: ConnectivitySpace
    modulo_permutation: ConnectivitySpace | None
    alignment: Mapping[str, Any]
    work: Mapping[str, Any]
    theory: ConnectivityTheory
    guarantee: str = ""


    def space(self, space: Space = "parameter") -> ConnectivitySpace:
        """The parameter-space or modulo-permutation view.

        Raises:
            ValueError: ``"permutation"`` was asked but alignment did not run.
        """
        if space == "parameter":
            return self.parameter_space
        if self.modulo_permutation is None:
            raise ValueError("No modulo-permutation results: submit with align=True.")
        return self.modulo_permutation

    def n_lambda_at(self, lam: float, *, space: Space = "parameter") -> int:
        """N_lambda at any level ``lam``, from the merge tree."""
        return self.space(space).n_lambda_at(lam)

    def n_lambda_table(self, *, space: Space = "parameter") -> list[tuple[float, int]]:
        """``(lambda, N_lambda)`` over the grid."""
        return list(zip(self.lambda_grid, self.space(space).n_lambda, strict=True))

    def to_pandas(self, table: Literal["n_lambda", "barriers", "minima"] = "n_lambda", *,
                  space: Space = "parameter") -> Any:
        """A table of the result as a ``pandas.DataFrame`` (needs the pandas extra).

        Args:
            table: ``"n_lambda"``: one row per grid level (``lambda``, ``n_lambda``,
                ``n_lambda_raw``); ``"barriers"``: one row per pair ``i < j``
                (``i``, ``j``, ``barrier`` (an upper bound), ``source``, ``linear``);
                ``"minima"``: one row per minimum (``index``, ``loss``, ``grad_norm``).
            space: ``"parameter"`` or ``"permutation"``.
        """
        from landscope._frames import frame

        s = self.space(space)
        rows: list[dict[str, Any]]
        if table == "n_lambda":
            rows = [{"lambda": lam, "n_lambda": n, "n_lambda_raw": raw} for lam, n, raw in
                    zip(self.lambda_grid, s.n_lambda, s.n_lambda_raw, strict=True)]
            return frame(rows, ["lambda", "n_lambda", "n_lambda_raw"])
        if table == "barriers":
            m = len(s.barriers)
            rows = [{"i": i, "j": j, "barrier": s.barriers[i][j],
                     "source": s.barrier_source[i][j] if s.barrier_source else None,
                     "linear": s.barriers_linear[i][j] if s.barriers_linear else None}
                    for i in range(m) for j in range(i + 1, m)]
            return frame(rows, ["i", "j", "barrier", "source", "linear"])
        if table == "minima":
            rows = [{"index": mn.index, "loss": mn.loss,
                     "grad_norm": mn.grad_norm} for mn in self.minima]
            return frame(rows, ["index", "loss", "grad_norm"])
        raise ValueError(f"table must be 'n_lambda', 'barriers' or 'minima', got {table!r}.")

    def spurious_valley_levels(self, *, space: Space = "parameter") -> list[float]:
        """Grid levels with a component holding none of the lowest minima found."""
        s = self.space(space)
        return [
            lam
            for lam, holds in zip(self.lambda_grid, s.contains_global_min, strict=True)
            if holds and not all(holds)
        ]
