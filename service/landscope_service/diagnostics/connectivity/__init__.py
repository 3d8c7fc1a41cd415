"""Level-set connectivity: minima, paths, barriers, N_lambda and the merge tree.

See THEORY.md section 1. Public API: path finders on any differentiable function of a
flat vector (:mod:`.paths`: :mod:`.profile` certified maxima, :mod:`.neb`,
:mod:`.bezier`), permutation alignment (:mod:`.align`), minima training
(:mod:`.minima`), merge trees (:mod:`.mergetree`), MST-first refinement
(:mod:`.refine`), plots (:mod:`.plots`) and the job runner (:mod:`.runner`).
"""

from .align import align_flat, apply_permutations, hidden_layers, weight_matching
from .analysis import PathConfigs, analyze_points, batch_paths, pair_paths, path_configs
from .mergetree import (
    Merge,
    MergeTree,
    UnionFind,
    bottleneck_matrix,
    build_merge_tree,
    default_lambda_grid,
    minimum_spanning_edges,
    noise_level,
    resolved_spread,
)
from .minima import TrainedMinimum, init_params, minimize
from .objective import Objective, flat_params, has_batchnorm, problem_objective
from .paths import (
    BezierConfig,
    LinearConfig,
    NEBConfig,
    PathResult,
    bezier_path,
    linear_path,
    linear_paths,
    neb_path,
    neb_paths,
)
from .plots import merge_tree_png, path_profiles_png
from .profile import certify_profiles
from .refine import PairOutcome, RefineReport, refine_barriers
from .runner import DEFAULT_OPTIONS, pair_piece, run_level_set_connectivity, train_piece
from .theory import architecture_facts, theory_block

__all__ = [
    "DEFAULT_OPTIONS",
    "BezierConfig",
    "LinearConfig",
    "Merge",
    "MergeTree",
    "NEBConfig",
    "Objective",
    "PairOutcome",
    "PathConfigs",
    "PathResult",
    "RefineReport",
    "TrainedMinimum",
    "UnionFind",
    "align_flat",
    "analyze_points",
    "apply_permutations",
    "architecture_facts",
    "batch_paths",
    "bezier_path",
    "bottleneck_matrix",
    "build_merge_tree",
    "certify_profiles",
    "default_lambda_grid",
    "flat_params",
    "has_batchnorm",
    "hidden_layers",
    "init_params",
    "linear_path",
    "linear_paths",
    "merge_tree_png",
    "minimize",
    "minimum_spanning_edges",
    "neb_path",
    "neb_paths",
    "noise_level",
    "pair_paths",
    "pair_piece",
    "path_configs",
    "path_profiles_png",
    "problem_objective",
    "refine_barriers",
    "resolved_spread",
    "run_level_set_connectivity",
    "theory_block",
    "train_piece",
    "weight_matching",
]
