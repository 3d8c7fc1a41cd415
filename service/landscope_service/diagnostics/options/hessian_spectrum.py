"""Options of ``hessian_spectrum``: the one hand-written source (see the package doc)."""

from __future__ import annotations

from . import OptionSet, Rule, boolean, choice, group, integer, number
from .evaluate import PARALLEL

__all__ = ["EXACT_MAX_PARAMS", "HVP_CHOICES", "OPTIONS", "RUNNER"]

HVP_CHOICES = (
    "auto",
    "double_backward",
    "forward_over_reverse",
    "reverse_over_reverse",
    "vmap_forward_over_reverse",
)

EXACT_MAX_PARAMS = 20_000
"""Largest P accepted for ``mode="exact"``: the dense float64 Hessian needs 8 P^2 bytes
(20,000 -> 3.2 GB) and ``eigh`` O(P^3) time."""

RUNNER = "landscope_service.diagnostics.hessian.runner:run_hessian_spectrum"
"""The runner, ``module:function`` (imported by workers only: it imports torch)."""

OPTIONS = OptionSet(
    name="HessianSpectrumOptions",
    doc="Options of hessian_spectrum.",
    fields={
        "mode": choice("auto", ("auto", "exact", "iterative"),
                       '`"exact"`: dense Hessian from `P` blocked Hessian-vector products and '
                       'full `eigh`; `"iterative"`: Lanczos + stochastic Lanczos quadrature; '
                       '`"auto"`: the cheaper of the two by the cost estimate (`job.estimate`'
                       ", docs/estimates.md), exact only when `P <= exact_threshold`."),
        "exact_threshold": integer(2048, "Largest `P` that `auto` may do exactly (at most "
                                   "20,000: the dense float64 Hessian needs `8 P^2` bytes).",
                                   ge=0, le=EXACT_MAX_PARAMS),
        "top_k": integer(5, "Number of largest eigenvalues (`<= P`).", ge=0),
        "bottom_k": integer(1, "Number of smallest (algebraic) eigenvalues: the most negative "
                            "curvature.", ge=0),
        "tol": number(1e-6, "Convergence: every wanted Ritz pair has residual "
                      "`||H y - theta y|| <= tol * ||H||`. Raised to `30 eps(dtype)` at least "
                      "(3.6e-6 in float32: smaller residuals are rounding noise of float32 "
                      "products); the result's `tol` is the one used, `tol_requested` the one "
                      "asked.", gt=0, lt=1),
        "max_products": integer(2000, "Product budget of the extreme-eigenvalue run.",
                                ge=1, le=100_000),
        "max_basis": integer(400, "Lanczos basis size before a thick restart (memory "
                             "`max_basis * P` numbers); `>= top_k + bottom_k + 2 * block_size`.",
                             ge=4, le=5000),
        "block_size": integer(1, "Block Lanczos with this many vectors per step (`<= P/2`): "
                              "finds eigenvalues repeated up to `block_size` times; batched "
                              "products (a gain on accelerators; on one CPU thread a block "
                              "costs about the same per vector, so the default is 1).",
                              ge=1, le=64),
        "trace": boolean(True, "Estimate the trace."),
        "density": boolean(True, "Estimate the spectral density."),
        "density_probes": integer(8, "Independent SLQ probes (run as pieces, fanned out over "
                                  "workers).", ge=1, le=1000),
        "density_steps": integer(80, "Lanczos steps per probe.", ge=2, le=2000),
        "density_grid_points": integer(512, "Grid points of the broadened density.",
                                       ge=2, le=100_000),
        "density_sigma": number(None, "Gaussian broadening (standard deviation); null: "
                                "`sqrt(1e-5 * max(1, width))`.", gt=0, nullable=True),
        "density_sigma_scale": number(1.0, "Multiplier of the default broadening "
                                      "`sqrt(1e-5 * max(1, width))` (> 1 smooths, < 1 "
                                      "sharpens); ignored when `density_sigma` is given.",
                                      gt=0, le=1000),
        "negative_tol": number(1e-5, "An eigenvalue counts as negative below "
                               "`-negative_tol * ||H||`.", ge=0, le=1),
        "ggn_split": boolean(True, "Gauss-Newton / residual split of the extreme "
                             "eigenvectors."),
        "blocks": boolean(False, "Per-layer (parameter-group) diagonal blocks: top eigenvalue "
                          "and trace."),
        "block_max_products": integer(300, "Product budget of each block's top eigenvalue.",
                                      ge=1, le=100_000),
        "hvp": choice("auto", HVP_CHOICES, "Hessian-vector product implementation "
                      "(`auto`: the fastest for the model)."),
        "return_eigenvectors": boolean(False, "Write `eigenvectors.safetensors` (rows: unit "
                                       "eigenvectors in `flatten(params)` order; `top`, "
                                       "`bottom`, `top_eigenvalues`, `bottom_eigenvalues`)."),
        "parallel": group(PARALLEL, "Iterative mode: every Hessian product of the job's own "
                          "runs (extremes, deflation, blocks) as shards over the job's "
                          "workers; probe pieces and exact mode are not sharded."),
    },
    rules=(
        Rule("max_basis", "max_basis >= top_k + bottom_k + 2 * block_size",
             "max_basis={max_basis} must be >= top_k + bottom_k + 2 * block_size (top_k="
             "{top_k}, bottom_k={bottom_k}, block_size={block_size})."),
    ),
)
