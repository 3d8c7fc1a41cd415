"""Options of ``sweep``: the one hand-written source (see the package doc).

Only the claims the core implements are offered (``CLAIMS``). Whether a claim applies to
the base network (e.g. ``width_barriers`` needs hidden linear layers to widen) is checked
at submit time by ``jobs/kinds/sweep.py`` and again by the runner.
"""

from __future__ import annotations

from . import OptionSet, array, boolean, choice, group, integer, number

__all__ = ["CLAIMS", "OPTIONS", "RUNNER", "TRAIN"]

CLAIMS = ("edge_of_stability", "width_barriers", "batch_norm", "skip_connections",
          "batch_size", "weight_decay")
"""The claims of THEORY.md section 4 that are implemented, in the order they were built."""

RUNNER = "landscope_service.diagnostics.sweep.runner:run_sweep"
"""The runner, ``module:function`` (imported by workers only: it imports torch)."""

TRAIN = OptionSet(
    name="SweepTrainOptions",
    doc="How each (variant, seed) is trained: full-batch gradient descent from the seed's "
    "PyTorch-default initialisation.",
    fields={
        "steps": integer(600, "Gradient-descent steps per run (batch_size: the step cap of "
                         "each SGD run; a run stopped there above the target loss is "
                         "flagged unmatched).", ge=1, le=100_000),
        "lr": number(0.05, "Learning rate of claims trained at one rate (width_barriers, "
                     "batch_norm, skip_connections, weight_decay); edge_of_stability and "
                     "batch_size use learning_rates.", gt=0, le=1e4),
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
                        "permutation-aligned), batch_norm (Santurkar et al. 2018: batch norm "
                        "makes the loss smoother along the gradient), skip_connections (Li et "
                        "al. 2018: deep plain networks are sharper and less convex than their "
                        "residual versions), batch_size (Keskar et al. 2017: at a matched "
                        "loss, larger lr/B ends in flatter minima) or weight_decay (the "
                        "notes: weight decay broadens the minimum)."),
        "seeds": integer(3, "Independent initialisations per variant (verdicts state k/n "
                         "seeds).", ge=3, le=64),
        "train": group(TRAIN, "Training of each run."),
        "learning_rates": array(number(None, "A learning rate eta.", gt=0, le=1e4),
                                (0.05,), "edge_of_stability: the learning rates; one "
                                "full-batch GD run per rate and seed. batch_size: the SGD "
                                "learning rates, crossed with batch_sizes.", min_items=1,
                                max_items=16),
        "batch_sizes": array(integer(None, "A batch size B (above N it becomes N: "
                                     "full-batch).", ge=1, le=1_000_000), (8, 64),
                             "batch_size: the SGD batch sizes, crossed with learning_rates; "
                             "the verdict compares the smallest and the largest lr/B.",
                             min_items=1, max_items=16),
        "target_loss": number(None, "batch_size: the matched full-data training loss every "
                              "run trains to (checked after each epoch); null: target_fraction "
                              "times the seed's initial loss (the same for every variant of "
                              "a seed).", ge=0, le=1e300, nullable=True),
        "target_fraction": number(0.1, "batch_size: the target as a fraction of the seed's "
                                  "initial loss, when target_loss is null.", gt=0, lt=1),
        "epsilon": number(1e-3, "batch_size, weight_decay: the box of epsilon-sharpness, "
                          "|z_i| <= epsilon (|theta_i| + 1) (Keskar et al. 2017).", gt=0,
                          le=1),
        "sharpness_iters": integer(10, "batch_size, weight_decay: L-BFGS-B iterations of the "
                                   "epsilon-sharpness maximisation (its value is a lower "
                                   "bound of the box maximum).", ge=1, le=1000),
        "weight_decays": array(number(None, "An L2 decay strength.", ge=0, le=1e3),
                               (0.0, 0.01, 0.1), "weight_decay: decay strengths; one "
                               "full-batch GD run (train.lr, train.steps) per decay and seed; "
                               "the verdict compares the smallest and the largest.",
                               min_items=2, max_items=8),
        "trace_probes": integer(20, "weight_decay: Hutchinson probes of tr(H) (exact from P "
                                "unit vectors when P <= trace_probes).", ge=1, le=10_000),
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
                          "for the non-convex fraction; batch_size, weight_decay: "
                          "filter-normalised directions of the curvature d^T H d.", ge=1,
                          le=256),
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
