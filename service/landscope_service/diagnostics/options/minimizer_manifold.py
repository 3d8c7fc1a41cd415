"""Options of ``minimizer_manifold``: the one hand-written source (see the package doc)."""

from __future__ import annotations

from . import OptionSet, boolean, choice, integer, number

__all__ = ["OPTIONS", "RUNNER"]

RUNNER = "landscope_service.diagnostics.manifold.runner:run_minimizer_manifold"
"""The runner, ``module:function`` (imported by workers only: it imports torch)."""

OPTIONS = OptionSet(
    name="MinimizerManifoldOptions",
    doc="Options of minimizer_manifold.",
    fields={
        "fit_tol": number(1e-20, "Loss (mean squared error) at or below which the fit counts "
                          "as interpolating.", gt=0, le=1.0),
        "fit_max_steps": integer(100, "Levenberg-Marquardt step budget (Jacobian "
                                 "evaluations).", ge=0, le=10_000),
        "route": choice("auto", ("auto", "dense", "gram"),
                        "Jacobian route: dense J (SVD) or the Gram matrix J J^T built from "
                        "blocks; auto picks dense when 3 * 8 rN P bytes fit memory_mb."),
        "memory_mb": integer(1024, "Working-memory budget (MiB) for Jacobian blocks and the "
                             "route choice.", ge=16, le=16_384),
        "chunk_size": integer(None, "Samples per Jacobian block; null sizes blocks from "
                              "memory_mb.", ge=1, nullable=True),
        "rank_rtol": number(None, "Override of the relative rank tolerance "
                            "(sigma_i > rank_rtol * sigma_max); null uses the documented rule.",
                            gt=0, lt=1, nullable=True),
        "hessian_exact_max_params": integer(2048, "Dense Hessian (P HVPs) when P is at most "
                                            "this; else the nullity comes from the Gram "
                                            "matrix.", ge=0, le=8192),
        "walk_steps": integer(5, "Steps along random directions in null(J).", ge=0, le=1000),
        "walk_step_length": number(0.05, "Euclidean length of each walk step (and of the "
                                   "control step) in parameter space.", gt=0, le=1e3),
        "retract_max_steps": integer(20, "Gauss-Newton steps allowed per retraction.",
                                     ge=1, le=1000),
        "control_step": boolean(True, "Also take one step orthogonal to null(J) and report "
                                "its loss rise."),
    },
)
