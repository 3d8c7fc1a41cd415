"""Options of ``level_set_connectivity``: the one hand-written source (see the package doc)."""

from __future__ import annotations

from . import (
    OptionSet,
    Rule,
    array,
    boolean,
    choice,
    group,
    integer,
    number,
    string,
)

__all__ = ["MAX_MINIMA", "OPTIONS", "RUNNER"]

MAX_MINIMA = 64
"""Largest number of minima of one job (M (M - 1) / 2 pairs get a cheap bound)."""

_LR_RELATIVE = "Learning rate relative to the RMS per-coordinate endpoint distance."

TRAIN = OptionSet(
    name="TrainOptions",
    doc="Full-batch training of the seed-trained minima.",
    fields={
        "optimizer": choice("adam", ("adam", "sgd", "lbfgs"),
                            "adam, sgd (heavy ball) or lbfgs (strong Wolfe)."),
        "steps": integer(500, "Optimiser steps per minimum.", ge=0, le=1_000_000),
        "lr": number(0.01, "Learning rate.", gt=0, le=1e6),
        "momentum": number(0.9, "Momentum of sgd.", ge=0, lt=1),
    },
)

LINEAR = OptionSet(
    name="LinearOptions",
    doc="Sampling and certification of every path profile (linear paths and optimised "
        "curves): values and directional derivatives at samples, a curvature bound "
        "between them, bracketing refinement to the resolution.",
    fields={
        "num_points": integer(33, "Uniform samples on [0, 1] to start from.", ge=2,
                              le=10_000),
        "refine_rounds": integer(40, "Most certification rounds.", ge=0, le=1000),
        "refine_points": integer(16, "Most new samples per path and round.", ge=0, le=1000),
        "resolution": number(None, "Absolute resolution of a path maximum in loss units "
                             "(null: rel_resolution times the rise of the path).", gt=0,
                             le=1e12, nullable=True),
        "rel_resolution": number(1e-4, "Resolution relative to the rise of the highest "
                                 "sample above the lower end (when resolution is null).",
                                 gt=0, le=1),
        "curvature_safety": number(2.0, "Factor on the local curvature estimate (the "
                                   "largest curvature of the cubic interpolants of an "
                                   "interval and its neighbours).", ge=1, le=1e6),
    },
)

NEB = OptionSet(
    name="NEBOptions",
    doc="Nudged elastic band with adaptive pivot insertion (Draxler et al. 2018).",
    fields={
        "images": integer(7, "Interior pivots of the initial straight chain.", ge=1, le=1000),
        "cycles": integer(6, "Cycles (relax, then insert pivots where the band is high).",
                          ge=1, le=100),
        "steps": integer(100, "Adam steps per cycle.", ge=0, le=100_000),
        "lr": number(0.05, _LR_RELATIVE + " Decays by 0.7 from cycle to cycle.", gt=0,
                     le=1e6),
        "spring": number(1.0, "Spring constant relative to the mean perpendicular force.",
                         ge=0, le=1e6),
        "climb": boolean(True, "Climbing image."),
        "max_pivots": integer(33, "Most pivots, endpoints included (at least images + 2).",
                              ge=3, le=10_000),
        "insert_per_cycle": integer(4, "Pivots inserted per cycle (segments rising most "
                                    "above their ends, else the longest).", ge=0, le=1000),
        "segment_points": integer(5, "Points per segment searched for the highest residual.",
                                  ge=1, le=1000),
        "insert_tol": number(1e-3, "Relative rise of a segment that counts as rising.",
                             ge=0, le=1),
        "converge_tol": number(1e-3, "A chain whose band maximum fell by at most this times "
                               "its excess over the higher end during a cycle stops (0: "
                               "never).", ge=0, le=1),
    },
    rules=(
        Rule("max_pivots", "max_pivots >= images + 2",
             "max_pivots ({max_pivots}) must be at least images + 2 (images={images})."),
    ),
)

BEZIER = OptionSet(
    name="BezierOptions",
    doc="Quadratic Bezier curve trained on the expected loss (Garipov et al. 2018).",
    fields={
        "steps": integer(300, "Adam steps on the control point.", ge=0, le=100_000),
        "lr": number(0.05, _LR_RELATIVE, gt=0, le=1e6),
        "samples": integer(8, "t samples per step.", ge=1, le=1024),
    },
)

PATHS = OptionSet(
    name="PathsOptions",
    doc="Which optimised path finders refine a pair, and their settings.",
    fields={
        "methods": array(choice("neb", ("neb", "bezier"), "A path finder."), ("neb",),
                         "Optimised path finders: neb and/or bezier (the lower wins).",
                         min_items=1, max_items=2),
        "linear": group(LINEAR, "Profile grid."),
        "neb": group(NEB, "AutoNEB settings."),
        "bezier": group(BEZIER, "Bezier settings."),
    },
)

REFINE = OptionSet(
    name="RefineOptions",
    doc="Which pairs get optimised paths.",
    fields={
        "strategy": choice(
            "exact", ("exact", "mst", "all", "none"),
            "exact: minimum-spanning-tree edges first, then every pair that could still "
            "lower a merge height (its lower bound max(L_i, L_j) is below it): the same "
            "N_lambda and merge heights as all, usually for fewer pairs; mst: the same with "
            "an optimistic prediction instead of the bound (cheaper, may miss a low path); "
            "all: every pair; none: linear bounds only."),
        "budget_pairs": integer(None, "Most pairs refined (null: no limit).", ge=0,
                                le=100_000, nullable=True),
        "beyond_mst": boolean(True, "mst strategy: once the tree is stable, also refine the "
                              "pairs predicted (optimistically, from the refined pairs' ratio "
                              "of optimised to linear excess) to lower a merge height."),
        "per_edge": integer(1, "Beyond the tree: pairs per tree edge in the first round "
                            "(the likeliest bypasses first).", ge=1, le=10_000),
        "growth": number(2.0, "Factor on per_edge from round to round (fewer, wider "
                         "rounds).", ge=1, le=1000),
    },
)

RUNNER = "landscope_service.diagnostics.connectivity.runner:run_level_set_connectivity"
"""The runner, ``module:function`` (imported by workers only: it imports torch)."""

OPTIONS = OptionSet(
    name="LevelSetConnectivityOptions",
    doc="Options of level_set_connectivity.",
    fields={
        "minima": array(string(None, "A weight blob id.", min_length=1, max_length=200), (),
                        "Weight blob ids of given minima (same architecture).",
                        max_items=MAX_MINIMA),
        "num_trained": integer(4, "Minima trained by the service from derived seeds; given + "
                               f"trained >= 2 and <= {MAX_MINIMA}.", ge=0, le=MAX_MINIMA),
        "train": group(TRAIN, "Training of the seed-trained minima."),
        "paths": group(PATHS, "Path finders."),
        "align": boolean(False, "Also report barriers and counts modulo permutations of "
                         "hidden units (weight matching)."),
        "refine": group(REFINE, "Refinement strategy and budget."),
        "lambda_grid": array(number(None, "A loss level."), None,
                             "Loss levels lambda for N_lambda; null: a uniform grid of "
                             "lambda_grid_size levels spanning the minima and merge heights.",
                             min_items=1, max_items=10_000, nullable=True),
        "lambda_grid_size": integer(64, "Levels of the automatic grid.", ge=2, le=10_000),
        "persistence_threshold": number(1e-2, "Relative persistence below which a merge "
                                        "counts as noise: times the spread of the resolved "
                                        "heights (minima and refined merges, never "
                                        "straight-line bounds); the noise level is at least "
                                        "1e-3 times the loss of the zero output.", ge=0,
                                        le=1),
        "noise_tol": number(None, "Absolute noise level in loss units; replaces the "
                            "relative rule when set.", ge=0, le=1e12, nullable=True),
        "plot_log": choice("auto", ("auto", "linear", "log"), "Loss axis of "
                           "path_profiles.png (auto: log when the losses span more than "
                           "three decades)."),
    },
    rules=(
        Rule("num_trained", "len(minima) + num_trained >= 2",
             "At least 2 minima are needed: given minima and num_trained={num_trained} make "
             "fewer; add weight blob ids to minima or raise num_trained."),
        Rule("num_trained", f"len(minima) + num_trained <= {MAX_MINIMA}",
             f"At most {MAX_MINIMA} minima per job: given minima plus "
             "num_trained={num_trained} make more."),
    ),
)
