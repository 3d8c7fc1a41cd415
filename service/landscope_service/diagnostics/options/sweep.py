"""Options of ``sweep``: the one hand-written source (see the package doc).

Only the claims the core implements are offered (``CLAIMS``). Whether a claim applies to
the base network (e.g. ``width_barriers`` needs hidden linear layers to widen) is checked
at submit time by ``jobs/kinds/sweep.py`` and again by the runner.
"""

from __future__ import annotations

from . import OptionSet, array, boolean, choice, group, integer, number

__all__ = ["CLAIMS", "OPTIONS", "RUNNER", "TRAIN"]

CLAIMS = ("edge_of_stability", "width_barriers", "batch_norm", "skip_connections")
"""The claims of THEORY.md section 4 that are implemented, in the order they were built."""

RUNNER = "landscope_service.diagnostics.sweep.runner:run_sweep"
"""The runner, ``module:function`` (imported by workers only: it imports torch)."""

TRAIN = OptionSet(
    name="SweepTrainOptions",
    doc="How each (variant, seed) is trained: full-batch gradient descent from the seed's "
    "PyTorch-default initialisation.",
    fields={
        "steps": integer(600, "Gradient-descent steps per run.", ge=1, le=100_000),
        "lr": number(0.05, "Learning rate of claims trained at one rate (width_barriers); "
                     "edge_of_stability uses learning_rates.", gt=0, le=1e4),
        "sharpness_every": integer(10, "edge_of_stability: steps between lambda_max "
                                   "measurements (Lanczos top-1, warm-started from the last "
                                   "eigenvector).", ge=1, le=10_000),
        "lanczos_tol": number(1e-6, "Residual tolerance of each lambda_max, relative to "
                              "||H||; a measurement past max_products is flagged unconverged.",
                              gt=0, lt=1),
        "lanczos_max_products": integer(200, "Hessian-vector products per lambda_max "
                                        "measurement.", ge=2, le=100_000),
        "divergence_factor": number(1e6, "A run has diverged when its loss is not finite or "
                                    "exceeds this many times its initial loss (it stops "
                                    "there).", gt=1, le=1e300),
    },
)

OPTIONS = OptionSet(
    name="SweepOptions",
    doc="Options of sweep.",
    fields={
        "claim": choice("edge_of_stability", CLAIMS,
                        "The claim to test: edge_of_stability (Cohen et al. 2021: under "
                        "full-batch GD lambda_max settles at 2/eta), width_barriers (wider "
                        "networks have lower linear barriers between minima, raw and "
                        "permutation-aligned) or batch_norm (Santurkar et al. 2018: batch norm "
                        "makes the loss smoother along the gradient) or skip_connections (Li et "
                        "al. 2018: deep plain networks are sharper and less convex than their "
                        "residual versions)."),
        "seeds": integer(3, "Independent initialisations per variant (verdicts state k/n "
                         "seeds).", ge=3, le=64),
        "train": group(TRAIN, "Training of each run."),
        "learning_rates": array(number(None, "A learning rate eta.", gt=0, le=1e4),
                                (0.05,), "edge_of_stability: the learning rates; one "
                                "full-batch GD run per rate and seed.", min_items=1,
                                max_items=16),
        "widths": array(number(None, "A width multiplier.", gt=0, le=64), (1.0, 2.0, 4.0),
                        "width_barriers: multipliers of every hidden layer's width "
                        "(round(w * m), at least 1); 1 is the base network.", min_items=2,
                        max_items=8),
        "probe_steps": array(number(None, "A step along -g, in units of train.lr.", gt=0,
                                    le=1e4), (0.5, 1.0, 2.0, 4.0),
                             "batch_norm: steps eta along -g where the gradient change and "
                             "the loss are probed, as multiples of train.lr.", min_items=1,
                             max_items=16),
        "measure_points": integer(5, "batch_norm: points of each training run (evenly "
                                  "spaced steps, first and last included) where the "
                                  "smoothness along -g is measured.", ge=1, le=100),
        "depths": array(integer(None, "A number of hidden layers.", ge=1, le=64), (2, 8),
                        "skip_connections: depths d; each gives a plain and a residual "
                        "variant (branch scaled 1/sqrt(d)); the verdict compares them at the "
                        "deepest.", min_items=1, max_items=8),
        "slices": integer(8, "skip_connections: 1-D filter-normalised random slices per run "
                          "for the non-convex fraction.", ge=1, le=256),
        "slice_points": integer(21, "skip_connections: points of each slice on [-1, 1].",
                                ge=5, le=401),
        "plots": boolean(True, "Write sharpness.png/svg (edge_of_stability: lambda_max "
                         "traces with 2/eta lines) or seeds.png/svg (the deciding measure per "
                         "seed and variant)."),
        "barrier_points": integer(33, "width_barriers: initial samples of each linear path "
                                  "(certified between samples as level_set_connectivity "
                                  "does).", ge=3, le=1001),
    },
)
