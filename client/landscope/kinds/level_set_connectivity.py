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
from dataclasses import dataclass
from typing import Any, Literal

from landscope._exceptions import InvalidResponseError

from ._json import as_bool as _as_bool
from ._json import as_list as _as_list
from ._json import as_str as _as_str
from ._json import bool_ as _bool
from ._json import has as _has
from ._json import int_ as _int
from ._json import ints as _ints
from ._json import num as _num
from ._json import nums as _nums
from ._json import obj as _obj
from ._json import opt_bool as _opt_bool
from ._json import opt_int as _opt_int
from ._json import opt_num as _opt_num
from ._json import opt_nums as _opt_nums
from ._json import opt_str as _opt_str
from ._json import str_ as _str
from ._options import (
    BezierOptions,
    LevelSetConnectivityOptions,
    LinearOptions,
    NEBOptions,
    PathsOptions,
    RefineOptions,
    TrainOptions,
)

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
    "TheoremCheck",
    "TrainOptions",
]

OptimizerName = Literal["adam", "sgd", "lbfgs"]
PathMethod = Literal["neb", "bezier"]
Strategy = Literal["exact", "mst", "all", "none"]
Space = Literal["parameter", "permutation"]

ProfileOptions = LinearOptions
"""The earlier name of :class:`LinearOptions` (``paths.linear``)."""
PathOptions = PathsOptions
"""The earlier name of :class:`PathsOptions` (``paths``)."""


# ---------------------------------------------------------------- results
@dataclass(frozen=True)
class ConnectivityMinimum:
    """One minimum: where it came from, its full-data loss and gradient norm."""

    index: int
    source: Literal["given", "trained"]
    blob: str | None
    seed: int | None
    loss: float
    grad_norm: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConnectivityMinimum:
        w = "result.minima[]"
        d = _obj(data, w)
        source = _str(d, "source", w)
        if source not in ("given", "trained"):
            raise InvalidResponseError(f"{w}.source should be given or trained, got {source!r}.")
        return cls(
            index=_int(d, "index", w),
            source="given" if source == "given" else "trained",
            blob=_opt_str(d, "blob", w),
            seed=_opt_int(d, "seed", w),
            loss=_num(d, "loss", w),
            grad_norm=_num(d, "grad_norm", w),
        )


@dataclass(frozen=True)
class MergeEvent:
    """An MST edge seen as the merge of two components (elder rule)."""

    height: float
    effective_height: float
    edge: tuple[int, int]
    survivor: int
    absorbed: int
    persistence: float
    noise: bool
    members: tuple[int, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MergeEvent:
        w = "merge_tree.merges[]"
        d = _obj(data, w)
        edge = _ints(_has(d, "edge", w), f"{w}.edge")
        if len(edge) != 2:
            raise InvalidResponseError(f"{w}.edge should hold two minima, got {edge}.")
        return cls(
            height=_num(d, "height", w),
            effective_height=_num(d, "effective_height", w),
            edge=(edge[0], edge[1]),
            survivor=_int(d, "survivor", w),
            absorbed=_int(d, "absorbed", w),
            persistence=_num(d, "persistence", w),
            noise=_bool(d, "noise", w),
            members=_ints(_has(d, "members", w), f"{w}.members"),
        )


@dataclass(frozen=True)
class PersistenceBar:
    """An H0 bar: a minimum's component is born at its loss and dies at a merge."""

    minimum: int
    birth: float
    death: float | None  # None: never dies (the lowest component)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PersistenceBar:
        w = "merge_tree.barcode[]"
        d = _obj(data, w)
        return cls(_int(d, "minimum", w), _num(d, "birth", w), _opt_num(d, "death", w))


@dataclass(frozen=True)
class MergeTree:
    """Merge tree (disconnectivity graph) and barcode of the minima."""

    threshold: float
    scale: float | None
    merges: tuple[MergeEvent, ...]
    barcode: tuple[PersistenceBar, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MergeTree:
        w = "merge_tree"
        d = _obj(data, w)
        return cls(
            threshold=_num(d, "threshold", w),
            scale=_opt_num(d, "scale", w),
            merges=tuple(MergeEvent.from_json(x) for x in _as_list(_has(d, "merges", w), w)),
            barcode=tuple(PersistenceBar.from_json(x) for x in _as_list(_has(d, "barcode", w), w)),
        )


@dataclass(frozen=True)
class Refinement:
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Refinement:
        w = "refinement"
        d = _obj(data, w)
        pairs = []
        for p in _as_list(_has(d, "refined_pairs", w), f"{w}.refined_pairs"):
            ij = _ints(p, f"{w}.refined_pairs[]")
            if len(ij) != 2:
                raise InvalidResponseError(f"{w}.refined_pairs[] should be pairs, got {ij}.")
            pairs.append((ij[0], ij[1]))
        return cls(
            strategy=_str(d, "strategy", w),
            pairs_total=_int(d, "pairs_total", w),
            pairs_refined=_int(d, "pairs_refined", w),
            refined_pairs=tuple(pairs),
            rounds=_int(d, "rounds", w),
            mst_stable=_bool(d, "mst_stable", w),
            budget_exhausted=_bool(d, "budget_exhausted", w),
            num_loss_evals=_int(d, "num_loss_evals", w),
            num_grad_evals=_int(d, "num_grad_evals", w),
        )


@dataclass(frozen=True)
class PairBarrier:
    """The best barrier found for a pair, its method, and the linear bound."""

    i: int
    j: int
    barrier: float | None
    method: str
    linear: float | None
    refined: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PairBarrier:
        w = "pairs[]"
        d = _obj(data, w)
        return cls(
            i=_int(d, "i", w),
            j=_int(d, "j", w),
            barrier=_opt_num(d, "barrier", w),
            method=_str(d, "method", w),
            linear=_opt_num(d, "linear", w),
            refined=_bool(d, "refined", w),
        )


@dataclass(frozen=True)
class ConnectivitySpace:
    """Barriers and level-set counts in one space (parameters, or modulo permutation).

    Attributes:
        barriers: ``M x M`` barrier upper bounds (diagonal: the minima's losses; None:
            no path).
        n_lambda: N_lambda on ``lambda_grid`` (noise merges removed).
        n_lambda_raw: the same without the persistence threshold.
        components: per lambda, the minima of each component.
        contains_global_min: per lambda, whether each component holds a lowest minimum.
        merge_heights: effective merge heights (MST edges).
        merge_tree: merges and barcode.
        refinement: refinement report.
        pairs: best barrier per pair.
        barriers_aligned: modulo-permutation space only: the barriers of the aligned
            pairs alone (``barriers`` is the smaller of these and parameter space).
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any], what: str = "space") -> ConnectivitySpace:
        d = _obj(data, what)

        def matrix(key: str) -> tuple[tuple[float | None, ...], ...]:
            rows = _as_list(_has(d, key, what), f"{what}.{key}")
            return tuple(_opt_nums(r, f"{what}.{key}[]") for r in rows)

        comps = tuple(
            tuple(_ints(c, f"{what}.components") for c in _as_list(level, f"{what}.components"))
            for level in _as_list(_has(d, "components", what), f"{what}.components")
        )
        holds = tuple(
            tuple(_as_bool(b, f"{what}.contains_global_min") for b in _as_list(level, what))
            for level in _as_list(_has(d, "contains_global_min", what), what)
        )
        return cls(
            barriers=matrix("barriers"),
            n_lambda=_ints(_has(d, "n_lambda", what), f"{what}.n_lambda"),
            n_lambda_raw=_ints(_has(d, "n_lambda_raw", what), f"{what}.n_lambda_raw"),
            components=comps,
            contains_global_min=holds,
            merge_heights=_opt_nums(_has(d, "merge_heights", what), f"{what}.merge_heights"),
            merge_tree=MergeTree.from_json(_has(d, "merge_tree", what)),
            refinement=Refinement.from_json(_has(d, "refinement", what)),
            pairs=tuple(PairBarrier.from_json(p) for p in _as_list(_has(d, "pairs", what), what)),
            barriers_aligned=matrix("barriers_aligned") if "barriers_aligned" in d else None,
        )

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
class TheoremCheck:
    """A theorem of THEORY.md section 1 beside its measured counterpart.

    Attributes:
        statement: the theorem in one sentence.
        applies: its hypotheses hold for this architecture and loss.
        hypotheses: each hypothesis as checked (and the quantities in it).
        predictions: the theorem's predictions (keys such as ``predicted_n_lambda``,
            ``predicted_excess_scale``, ``predicts_no_spurious_valleys``).
        measured: the measured counterparts.
        agrees: prediction and measurement agree (None where nothing is predicted).
    """

    statement: str
    applies: bool
    hypotheses: Mapping[str, Any]
    predictions: Mapping[str, Any]
    measured: Mapping[str, Any]
    agrees: bool | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], what: str = "theory") -> TheoremCheck:
        d = _obj(data, what)
        known = {"statement", "applies", "hypotheses", "measured", "agrees"}
        return cls(
            statement=_str(d, "statement", what),
            applies=_bool(d, "applies", what),
            hypotheses=dict(_obj(d.get("hypotheses", {}), f"{what}.hypotheses")),
            predictions={k: v for k, v in d.items() if k not in known},
            measured=dict(_obj(_has(d, "measured", what), f"{what}.measured")),
            agrees=_opt_bool(d, "agrees", what),
        )


@dataclass(frozen=True)
class ConnectivityTheory:
    """The theory block: architecture facts and four theorem checks."""

    architecture: Mapping[str, Any]
    note: str
    freeman_bruna_linear: TheoremCheck
    freeman_bruna_relu: TheoremCheck
    two_layer_relu_scale: TheoremCheck
    quadratic_width: TheoremCheck
    global_min_loss: float | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConnectivityTheory:
        w = "result.theory"
        d = _obj(data, w)

        def th(key: str) -> TheoremCheck:
            return TheoremCheck.from_json(_has(d, key, w), f"{w}.{key}")

        return cls(
            architecture=dict(_obj(_has(d, "architecture", w), f"{w}.architecture")),
            note=_str(d, "note", w),
            freeman_bruna_linear=th("freeman_bruna_linear"),
            freeman_bruna_relu=th("freeman_bruna_relu"),
            two_layer_relu_scale=th("two_layer_relu_scale"),
            quadratic_width=th("quadratic_width"),
            global_min_loss=_opt_num(d, "global_min_loss", w),
        )


@dataclass(frozen=True)
class LevelSetConnectivityResult:
    """Result of ``level_set_connectivity``.

    Attributes:
        num_minima: M.
        minima: each minimum's origin, loss and gradient norm.
        barriers_are_upper_bounds: always True: a barrier is the highest loss along the
            best path found, an upper bound on the minimax barrier.
        barrier_note: that statement in words.
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LevelSetConnectivityResult:
        """Parse the job's ``result`` object.

        Raises:
            InvalidResponseError: the object does not follow the documented schema.
        """
        w = "result"
        d = _obj(data, w)
        mp = d.get("modulo_permutation")
        return cls(
            num_minima=_int(d, "num_minima", w),
            minima=tuple(
                ConnectivityMinimum.from_json(x) for x in _as_list(_has(d, "minima", w), w)
            ),
            barriers_are_upper_bounds=_bool(d, "barriers_are_upper_bounds", w),
            barrier_note=_str(d, "barrier_note", w),
            loss=_str(d, "loss", w),
            methods=tuple(_as_str(x, f"{w}.methods") for x in _as_list(_has(d, "methods", w), w)),
            lambda_grid=_nums(_has(d, "lambda_grid", w), f"{w}.lambda_grid"),
            persistence_threshold=_num(d, "persistence_threshold", w),
            parameter_space=ConnectivitySpace.from_json(
                _has(d, "parameter_space", w), f"{w}.parameter_space"
            ),
            modulo_permutation=None
            if mp is None
            else ConnectivitySpace.from_json(mp, f"{w}.modulo_permutation"),
            alignment=dict(_obj(_has(d, "alignment", w), f"{w}.alignment")),
            work=dict(_obj(_has(d, "work", w), f"{w}.work")),
            theory=ConnectivityTheory.from_json(_has(d, "theory", w)),
        )

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

    def spurious_valley_levels(self, *, space: Space = "parameter") -> list[float]:
        """Grid levels with a component holding none of the lowest minima found."""
        s = self.space(space)
        return [
            lam
            for lam, holds in zip(self.lambda_grid, s.contains_global_min, strict=True)
            if holds and not all(holds)
        ]
