"""The ``hessian_spectrum`` kind: extreme eigenvalues, trace, density, negative curvature.

``HessianSpectrumOptions`` builds the ``options`` object; ``HessianSpectrumResult.from_json``
reads ``job.result``. Field meanings: docs/kinds/hessian_spectrum.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._options import HessianSpectrumOptions
from ._read import FromJson
from .evaluate import Parallel

__all__ = [
    "Density",
    "EigenPairs",
    "GGNPart",
    "GGNSplit",
    "HessianSpectrumOptions",
    "HessianSpectrumResult",
    "LayerBlock",
    "NegativeCurvature",
    "Products",
    "RitzBounds",
    "Theory",
    "Trace",
    "TraceEstimate",
]

Status = Literal["converged", "not_converged"]
Verdict = Literal["minimum", "saddle", "inconclusive"]


# --------------------------------------------------------------------------- result parts
@dataclass(frozen=True)
class EigenPairs(FromJson):
    """Extreme eigenvalues (top: descending; bottom: ascending) with residual norms."""

    eigenvalues: tuple[float | None, ...]
    residuals: tuple[float | None, ...]
    converged: tuple[bool, ...]


@dataclass(frozen=True)
class TraceEstimate(FromJson):
    """One trace estimator's output with its standard error and 95% interval."""

    estimate: float | None
    std_error: float | None
    ci95: tuple[float | None, float | None]
    num_probes: int
    num_products: int
    method: str
    deflation_rank: int


@dataclass(frozen=True)
class Trace(FromJson):
    """The trace: best estimate, and each estimator (``exact`` set in exact mode)."""

    method: str
    exact: float | None
    estimate: float | None
    std_error: float | None
    ci95: tuple[float | None, float | None]
    hutchinson: TraceEstimate | None
    hutchpp: TraceEstimate | None


@dataclass(frozen=True)
class Density(FromJson):
    """Gaussian-broadened spectral density on a grid, raw Ritz nodes and weights.

    ``negative_count_bounds`` brackets the number of negative eigenvalues by the
    Chebyshev-Markov-Stieltjes inequalities of the quadrature (up to probe noise).
    """

    grid: tuple[float | None, ...]
    values: tuple[float | None, ...]
    sigma: float | None
    nodes: tuple[tuple[float | None, ...], ...]
    weights: tuple[tuple[float | None, ...], ...]
    num_probes: int
    steps: int
    num_products: int
    moments: tuple[float | None, ...]
    moments_std_error: tuple[float | None, ...]
    negative_mass: float | None
    negative_mass_std_error: float | None
    negative_count_estimate: float | None
    negative_mass_bounds: tuple[float | None, ...]
    negative_count_bounds: tuple[float | None, ...]
    exact: bool


@dataclass(frozen=True)
class NegativeCurvature(FromJson):
    """Negative eigenvalues: exact count (exact mode) or estimate ``P * negative mass``."""

    count: int | None
    count_estimate: float | None
    mass: float | None
    threshold: float | None
    exact: bool


@dataclass(frozen=True)
class GGNPart(FromJson):
    """``eigenvalue = ggn + residual`` on one eigenvector (Rayleigh quotients)."""

    eigenvalue: float | None
    ggn: float | None
    residual: float | None


@dataclass(frozen=True)
class GGNSplit(FromJson):
    """Gauss-Newton / residual split of the top and bottom eigenvectors."""

    top: tuple[GGNPart, ...]
    bottom: tuple[GGNPart, ...]


@dataclass(frozen=True)
class LayerBlock(FromJson):
    """One layer's diagonal Hessian block: top eigenvalue and trace."""

    name: str
    params: tuple[str, ...]
    size: int
    top_eigenvalue: float | None
    residual: float | None
    converged: bool
    trace: float | None
    trace_std_error: float | None


@dataclass(frozen=True)
class Products(FromJson):
    """Hessian-vector (and GGN-vector) products spent, by part of the job.

    ``dense``: the ``P`` products of exact mode's dense build (0 in iterative mode, and in
    results of servers older than this field).
    """

    total: int
    extremes: int
    probes: int
    ggn: int
    blocks: int
    dense: int = 0


@dataclass(frozen=True)
class RitzBounds(FromJson):
    """Largest and smallest Ritz value over all probes (inner bounds of the spectrum)."""

    max_node: float | None
    min_node: float | None


@dataclass(frozen=True)
class Theory(FromJson):
    """THEORY.md section 3 statements, predictions beside measurements, and the verdict."""

    applies: tuple[str, ...]
    predictions: tuple[Mapping[str, Any], ...]
    measured: Mapping[str, Any]
    verdict: Verdict
    notes: tuple[str, ...]


@dataclass(frozen=True)
class HessianSpectrumResult(FromJson):
    """Result of ``hessian_spectrum`` (see docs/kinds/hessian_spectrum.md).

    ``status`` is ``"not_converged"`` when a wanted eigenvalue missed the residual
    tolerance; ``warnings`` then says so in words. ``exact`` is True in exact mode.
    ``parallel`` lists the shards when ``options.parallel.shards > 1`` (iterative mode).
    """

    status: Status
    exact: bool
    num_params: int
    num_samples: int
    loss: str
    loss_value: float | None
    grad_norm: float | None
    hvp_variant: str | None
    max_basis_used: int | None
    tol: float | None
    norm_estimate: float | None
    sharpness: float | None
    lambda_min: float | None
    condition_number: float | None
    top: EigenPairs
    bottom: EigenPairs
    trace: Trace | None
    density: Density | None
    negative: NegativeCurvature
    ggn_split: GGNSplit | None
    blocks: tuple[LayerBlock, ...] | None
    products: Products
    ritz_bounds: RitzBounds | None
    warnings: tuple[str, ...]
    theory: Theory
    parallel: Parallel | None = None

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    def to_pandas(self) -> Any:
        """The extreme eigenvalues as a ``pandas.DataFrame`` (needs the pandas extra).

        Columns: ``end`` (``"top"``: largest first, ``"bottom"``: smallest first),
        ``rank`` (0 = the extreme one), ``eigenvalue``, ``residual``, ``converged``.
        """
        from landscope._frames import frame

        rows = [{"end": end, "rank": k, "eigenvalue": pairs.eigenvalues[k],
                 "residual": pairs.residuals[k] if k < len(pairs.residuals) else None,
                 "converged": pairs.converged[k] if k < len(pairs.converged) else None}
                for end, pairs in (("top", self.top), ("bottom", self.bottom))
                for k in range(len(pairs.eigenvalues))]
        return frame(rows, ["end", "rank", "eigenvalue", "residual", "converged"])
