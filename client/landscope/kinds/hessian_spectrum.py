"""The ``hessian_spectrum`` kind: extreme eigenvalues, trace, density, negative curvature.

``HessianSpectrumOptions`` builds the ``options`` object; ``HessianSpectrumResult.from_json``
reads ``job.result``. Field meanings: docs/kinds/hessian_spectrum.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from landscope._exceptions import InvalidResponseError

from ._json import bool_ as _bool
from ._json import int_ as _int
from ._json import list_ as _list
from ._json import num_list as _nums
from ._json import obj as _obj
from ._json import opt_int as _opt_int
from ._json import opt_num as _opt_num
from ._json import str_ as _str
from ._json import strs as _strs
from ._options import HessianSpectrumOptions

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
class EigenPairs:
    """Extreme eigenvalues (top: descending; bottom: ascending) with residual norms."""

    eigenvalues: tuple[float | None, ...]
    residuals: tuple[float | None, ...]
    converged: tuple[bool, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any], what: str = "top") -> EigenPairs:
        d = _obj(data, what)
        conv = _list(d, "converged", what)
        if not all(isinstance(c, bool) for c in conv):
            raise InvalidResponseError(f"{what}.converged should be booleans, got {conv!r}.")
        return cls(_nums(d, "eigenvalues", what), _nums(d, "residuals", what),
                   tuple(cast(Sequence[bool], conv)))


@dataclass(frozen=True)
class TraceEstimate:
    """One trace estimator's output with its standard error and 95% interval."""

    estimate: float | None
    std_error: float | None
    ci95: tuple[float | None, float | None]
    num_probes: int
    num_products: int
    method: str
    deflation_rank: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any], what: str = "trace") -> TraceEstimate:
        d = _obj(data, what)
        ci = _nums(d, "ci95", what)
        if len(ci) != 2:
            raise InvalidResponseError(f"{what}.ci95 should have 2 numbers, got {ci!r}.")
        return cls(_opt_num(d, "estimate", what), _opt_num(d, "std_error", what), (ci[0], ci[1]),
                   _int(d, "num_probes", what), _int(d, "num_products", what),
                   _str(d, "method", what), _int(d, "deflation_rank", what))


@dataclass(frozen=True)
class Trace:
    """The trace: best estimate, and each estimator (``exact`` set in exact mode)."""

    estimate: float | None
    std_error: float | None
    ci95: tuple[float | None, float | None]
    method: str
    exact: float | None
    hutchinson: TraceEstimate | None
    hutchpp: TraceEstimate | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trace:
        d = _obj(data, "trace")
        ci = _nums(d, "ci95", "trace")
        if len(ci) != 2:
            raise InvalidResponseError(f"trace.ci95 should have 2 numbers, got {ci!r}.")
        h, hpp = d.get("hutchinson"), d.get("hutchpp")
        return cls(
            _opt_num(d, "estimate", "trace"), _opt_num(d, "std_error", "trace"), (ci[0], ci[1]),
            _str(d, "method", "trace"), _opt_num(d, "exact", "trace"),
            None if h is None else TraceEstimate.from_json(h, "trace.hutchinson"),
            None if hpp is None else TraceEstimate.from_json(hpp, "trace.hutchpp"),
        )


@dataclass(frozen=True)
class Density:
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Density:
        w = "density"
        d = _obj(data, w)
        nodes = tuple(_nums({"n": n}, "n", f"{w}.nodes") for n in _list(d, "nodes", w))
        weights = tuple(_nums({"n": n}, "n", f"{w}.weights") for n in _list(d, "weights", w))
        return cls(
            _nums(d, "grid", w), _nums(d, "values", w), _opt_num(d, "sigma", w), nodes, weights,
            _int(d, "num_probes", w), _int(d, "steps", w), _int(d, "num_products", w),
            _nums(d, "moments", w), _nums(d, "moments_std_error", w),
            _opt_num(d, "negative_mass", w), _opt_num(d, "negative_mass_std_error", w),
            _opt_num(d, "negative_count_estimate", w), _nums(d, "negative_mass_bounds", w),
            _nums(d, "negative_count_bounds", w), _bool(d, "exact", w),
        )


@dataclass(frozen=True)
class NegativeCurvature:
    """Negative eigenvalues: exact count (exact mode) or estimate ``P * negative mass``."""

    count: int | None
    count_estimate: float | None
    mass: float | None
    threshold: float | None
    exact: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NegativeCurvature:
        w = "negative"
        d = _obj(data, w)
        return cls(_opt_int(d, "count", w), _opt_num(d, "count_estimate", w),
                   _opt_num(d, "mass", w), _opt_num(d, "threshold", w), _bool(d, "exact", w))


@dataclass(frozen=True)
class GGNPart:
    """``eigenvalue = ggn + residual`` on one eigenvector (Rayleigh quotients)."""

    eigenvalue: float | None
    ggn: float | None
    residual: float | None

    @classmethod
    def from_json(cls, data: Any) -> GGNPart:
        d = _obj(data, "ggn_split[]")
        return cls(_opt_num(d, "eigenvalue", "ggn_split"), _opt_num(d, "ggn", "ggn_split"),
                   _opt_num(d, "residual", "ggn_split"))


@dataclass(frozen=True)
class GGNSplit:
    """Gauss-Newton / residual split of the top and bottom eigenvectors."""

    top: tuple[GGNPart, ...]
    bottom: tuple[GGNPart, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GGNSplit:
        d = _obj(data, "ggn_split")
        return cls(tuple(GGNPart.from_json(x) for x in _list(d, "top", "ggn_split")),
                   tuple(GGNPart.from_json(x) for x in _list(d, "bottom", "ggn_split")))


@dataclass(frozen=True)
class LayerBlock:
    """One layer's diagonal Hessian block: top eigenvalue and trace."""

    name: str
    params: tuple[str, ...]
    size: int
    top_eigenvalue: float | None
    residual: float | None
    converged: bool
    trace: float | None
    trace_std_error: float | None

    @classmethod
    def from_json(cls, data: Any) -> LayerBlock:
        w = "blocks[]"
        d = _obj(data, w)
        return cls(_str(d, "name", w), _strs(d, "params", w), _int(d, "size", w),
                   _opt_num(d, "top_eigenvalue", w), _opt_num(d, "residual", w),
                   _bool(d, "converged", w), _opt_num(d, "trace", w),
                   _opt_num(d, "trace_std_error", w))


@dataclass(frozen=True)
class Products:
    """Hessian-vector (and GGN-vector) products spent, by part of the job."""

    total: int
    extremes: int
    probes: int
    ggn: int
    blocks: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Products:
        w = "products"
        d = _obj(data, w)
        return cls(_int(d, "total", w), _int(d, "extremes", w), _int(d, "probes", w),
                   _int(d, "ggn", w), _int(d, "blocks", w))


@dataclass(frozen=True)
class RitzBounds:
    """Largest and smallest Ritz value over all probes (inner bounds of the spectrum)."""

    max_node: float | None
    min_node: float | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RitzBounds:
        d = _obj(data, "ritz_bounds")
        return cls(_opt_num(d, "max_node", "ritz_bounds"), _opt_num(d, "min_node", "ritz_bounds"))


@dataclass(frozen=True)
class Theory:
    """THEORY.md section 3 statements, predictions beside measurements, and the verdict."""

    applies: tuple[str, ...]
    predictions: tuple[Mapping[str, Any], ...]
    measured: Mapping[str, Any]
    verdict: Verdict
    notes: tuple[str, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Theory:
        w = "theory"
        d = _obj(data, w)
        verdict = _str(d, "verdict", w)
        if verdict not in ("minimum", "saddle", "inconclusive"):
            raise InvalidResponseError(f"theory.verdict is unknown: {verdict!r}.")
        preds = tuple(_obj(p, "theory.predictions[]") for p in _list(d, "predictions", w))
        return cls(_strs(d, "applies", w), preds, _obj(d.get("measured"), "theory.measured"),
                   cast(Verdict, verdict), _strs(d, "notes", w))


@dataclass(frozen=True)
class HessianSpectrumResult:
    """Result of ``hessian_spectrum`` (see docs/kinds/hessian_spectrum.md).

    ``status`` is ``"not_converged"`` when a wanted eigenvalue missed the residual
    tolerance; ``warnings`` then says so in words. ``exact`` is True in exact mode.
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

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HessianSpectrumResult:
        """Build from ``job.result``; raises ``InvalidResponseError`` on a malformed one."""
        w = "result"
        d = _obj(data, w)
        status = _str(d, "status", w)
        if status not in ("converged", "not_converged"):
            raise InvalidResponseError(f"result.status is unknown: {status!r}.")
        hv = d.get("hvp_variant")
        if hv is not None and not isinstance(hv, str):
            raise InvalidResponseError(f"result.hvp_variant should be a string, got {hv!r}.")
        blocks = d.get("blocks")
        return cls(
            status=cast(Status, status),
            exact=_bool(d, "exact", w),
            num_params=_int(d, "num_params", w),
            num_samples=_int(d, "num_samples", w),
            loss=_str(d, "loss", w),
            loss_value=_opt_num(d, "loss_value", w),
            grad_norm=_opt_num(d, "grad_norm", w),
            hvp_variant=hv,
            max_basis_used=_opt_int(d, "max_basis_used", w),
            tol=_opt_num(d, "tol", w),
            norm_estimate=_opt_num(d, "norm_estimate", w),
            sharpness=_opt_num(d, "sharpness", w),
            lambda_min=_opt_num(d, "lambda_min", w),
            condition_number=_opt_num(d, "condition_number", w),
            top=EigenPairs.from_json(_obj(d.get("top"), "result.top"), "top"),
            bottom=EigenPairs.from_json(_obj(d.get("bottom"), "result.bottom"), "bottom"),
            trace=None if d.get("trace") is None else Trace.from_json(d["trace"]),
            density=None if d.get("density") is None else Density.from_json(d["density"]),
            negative=NegativeCurvature.from_json(_obj(d.get("negative"), "result.negative")),
            ggn_split=None if d.get("ggn_split") is None else GGNSplit.from_json(d["ggn_split"]),
            blocks=None if blocks is None else tuple(
                LayerBlock.from_json(b) for b in _list(d, "blocks", w)),
            products=Products.from_json(_obj(d.get("products"), "result.products")),
            ritz_bounds=None if d.get("ritz_bounds") is None else RitzBounds.from_json(
                d["ritz_bounds"]),
            warnings=_strs(d, "warnings", w),
            theory=Theory.from_json(_obj(d.get("theory"), "result.theory")),
        )
