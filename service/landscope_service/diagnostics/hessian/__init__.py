"""Hessian spectrum diagnostic: extreme eigenvalues, trace, spectral density, exact mode.

THEORY.md section 3. Operators (:mod:`.operators`, :mod:`.hvp`), algorithms as plain
functions over the operator protocol (Krylov bases :mod:`.krylov`, the eigensolver
:mod:`.lanczos`, quadrature probes :mod:`.slq`, :mod:`.trace`, :mod:`.density`,
:mod:`.exact`), layer blocks (:mod:`.blocks`) and the job runner (:mod:`.runner`), with
its stage functions (:mod:`.stages`), result assembly (:mod:`.assemble`) and theory block
(:mod:`.theory`).
"""

from .blocks import ParamGroup, parameter_groups
from .density import (
    DensityEstimate,
    default_sigma,
    negative_mass,
    negative_mass_bounds,
    slq_density,
    slq_moments,
)
from .exact import dense_hessian, exact_spectrum
from .hvp import HVP_VARIANTS, HVPVariant, gradient, make_hvp, resolve_variant
from .krylov import BlockKrylovRun, KrylovRun, rademacher
from .lanczos import EigenResult, lanczos_extremes
from .operators import (
    BlockOperator,
    CurvatureOperator,
    DenseOperator,
    GGNOperator,
    HessianOperator,
)
from .runner import DEFAULT_OPTIONS, probe_piece, run_hessian_spectrum
from .slq import QuadratureResult, lanczos_quadrature
from .trace import (
    TraceEstimate,
    deflated_sample,
    exact_trace,
    hutchinson,
    hutchpp,
    summarize_samples,
)

__all__ = [
    "DEFAULT_OPTIONS",
    "HVP_VARIANTS",
    "BlockKrylovRun",
    "BlockOperator",
    "CurvatureOperator",
    "DenseOperator",
    "DensityEstimate",
    "EigenResult",
    "GGNOperator",
    "HVPVariant",
    "HessianOperator",
    "KrylovRun",
    "ParamGroup",
    "QuadratureResult",
    "TraceEstimate",
    "default_sigma",
    "deflated_sample",
    "dense_hessian",
    "exact_spectrum",
    "exact_trace",
    "gradient",
    "hutchinson",
    "hutchpp",
    "lanczos_extremes",
    "lanczos_quadrature",
    "make_hvp",
    "negative_mass",
    "negative_mass_bounds",
    "parameter_groups",
    "probe_piece",
    "rademacher",
    "resolve_variant",
    "run_hessian_spectrum",
    "slq_density",
    "slq_moments",
    "summarize_samples",
]
