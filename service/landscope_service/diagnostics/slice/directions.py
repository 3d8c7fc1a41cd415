"""Directions of a loss slice: ``theta(alpha, beta) = origin + alpha d1 + beta d2``.

Every function returns flat directions (``(P,)`` tensors in ``flatten(params)`` order) on
the parameters' device and dtype; :class:`SliceDirections` carries them with the slice's
origin, the points to overlay (minima, a trajectory) and what the result reports.

Filter normalisation (Li et al., 2018, "Visualizing the Loss Landscape of Neural Nets",
section 4): a Gaussian direction ``d`` is rescaled filter by filter so that each filter
of ``d`` has the norm of the same filter of the weights ``w``,
``d_f <- d_f ||w_f|| / ||d_f||``. A *filter* is one output channel of a convolution
(``weight[c]``) or one row (neuron) of a linear layer; in general, one slice along
dimension 0 of a weight with two or more dimensions. This removes the scale symmetry of
ReLU networks: multiplying a layer's weights by ``c`` and the next layer's by ``1/c``
leaves the function unchanged, and the filter-normalised slice of the rescaled network
equals the original's (a known-answer test checks it).

Biases and normalisation-layer parameters (one-dimensional, or owned by a BatchNorm,
LayerNorm, GroupNorm or InstanceNorm module) are handled explicitly by ``bias_norm``:

* ``"zero"`` (default, Li et al.'s ``ignore='biasbn'``): the direction is zero there, so
  the slice moves only the weights. Treating each bias entry as its own one-element
  "filter" -- what the ``loss-landscapes`` package does -- turns the direction into
  ``sign(d_i) |w_i|`` there: a random-sign copy of the bias, and for a norm layer's scale
  (``gamma ~ 1``) a step of the size of the whole scale, which dominates the picture and
  does not rescale with the network.
* ``"normalize"``: the parameter is normalised as one block, ``d_p <- d_p ||w_p|| /
  ||d_p||``, so biases move by the same relative amount as the weights, with a random
  direction inside the block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..hessian.lanczos import lanczos_extremes
from ..hessian.operators import HessianOperator
from ..monitor import Monitor
from ..problem import Params, Problem, flatten, unflatten

__all__ = [
    "BiasNorm",
    "SliceDirections",
    "coordinates",
    "direction_report",
    "filter_normalize",
    "given_directions",
    "hessian_top",
    "orthogonalize",
    "parameter_roles",
    "plane_through",
    "random_filter_normalized",
    "trajectory_pca",
]

BiasNorm = Literal["zero", "normalize"]
Role = Literal["filter", "bias_norm"]

_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
)


@dataclass
class SliceDirections:
    """The geometry of a slice.

    Attributes:
        origin: ``(P,)``, the point at ``alpha = beta = 0``.
        vectors: one or two ``(P,)`` directions.
        names: a label per direction (``"random 0"``, ``"eigenvector 1"``, ...).
        points: points to overlay, each ``{"label", "alpha", "beta", "theta"}`` where
            ``theta`` is the ``(P,)`` point (its loss is evaluated by the runner) and
            ``alpha``/``beta`` its coordinates in the slice (least squares).
        trajectory: ``(n, dims)`` coordinates of a projected trajectory, or None.
        info: what the result reports about how the directions were made.
    """

    origin: Tensor
    vectors: list[Tensor]
    names: list[str]
    points: list[dict[str, Any]] = field(default_factory=list)
    trajectory: Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers
def parameter_roles(model: nn.Module, params: Params) -> dict[str, Role]:
    """``"filter"`` for weights normalised per filter, ``"bias_norm"`` for the rest.

    A parameter is ``"bias_norm"`` when it has fewer than two dimensions or belongs to a
    normalisation module (BatchNorm, LayerNorm, GroupNorm, InstanceNorm); otherwise its
    filters are its slices along dimension 0 (conv output channels, linear rows).
    """
    modules = dict(model.named_modules())
    roles: dict[str, Role] = {}
    for name, p in params.items():
        owner = modules.get(name.rpartition(".")[0])
        if p.ndim < 2 or isinstance(owner, _NORM_TYPES):
            roles[name] = "bias_norm"
        else:
            roles[name] = "filter"
    return roles


def _scaled(d: Tensor, target: Tensor) -> Tensor:
    """``d`` rows rescaled to the norms of ``target`` rows (zero where ``d`` is zero)."""
    dn = torch.linalg.vector_norm(d, dim=1, keepdim=True)
    tn = torch.linalg.vector_norm(target, dim=1, keepdim=True)
    scale = torch.where(dn > 0, tn / torch.where(dn > 0, dn, torch.ones_like(dn)),
                        torch.zeros_like(dn))
    return d * scale


def filter_normalize(direction: Params, params: Params, roles: dict[str, Role],
                     bias_norm: BiasNorm = "zero") -> Params:
    """Rescale ``direction`` filter by filter to the norms of ``params`` (module docstring).

    Raises:
        ValueError: on an unknown ``bias_norm`` or mismatched names or shapes.
    """
    if bias_norm not in ("zero", "normalize"):
        raise ValueError(f"bias_norm must be 'zero' or 'normalize', got {bias_norm!r}.")
    if set(direction) != set(params):
        raise ValueError(f"The direction's parameters {sorted(direction)} do not match the "
                         f"model's {sorted(params)}.")
    out: Params = {}
    for name, w in params.items():
        d = direction[name]
        if d.shape != w.shape:
            raise ValueError(f"Shape mismatch for {name}: expected {tuple(w.shape)}, got "
                             f"{tuple(d.shape)}.")
        if roles[name] == "filter":
            out[name] = _scaled(d.reshape(d.shape[0], -1),
                                w.reshape(w.shape[0], -1)).reshape(w.shape)
        elif bias_norm == "zero":
            out[name] = torch.zeros_like(w)
        else:
            out[name] = _scaled(d.reshape(1, -1), w.reshape(1, -1)).reshape(w.shape)
    return out


def _cosine(a: Tensor, b: Tensor) -> float:
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    na, nb = torch.linalg.vector_norm(a64), torch.linalg.vector_norm(b64)
    if float(na) == 0.0 or float(nb) == 0.0:
        return 0.0
    return float((a64 @ b64) / (na * nb))


def orthogonalize(vectors: Sequence[Tensor]) -> tuple[list[Tensor], float]:
    """Gram-Schmidt of the second direction against the first, keeping its norm.

    ``d2 <- (d2 - (d1.d2 / d1.d1) d1) * ||d2|| / ||d2 - ...||``: the slice's axes become
    perpendicular and keep their scale (a filter-normalised direction stays of the
    weights' size). Returns the directions and the cosine before.

    Raises:
        ValueError: when the directions are parallel (the plane is a line).
    """
    if len(vectors) < 2:
        return list(vectors), 0.0
    d1, d2 = vectors[0], vectors[1]
    cos = _cosine(d1, d2)
    a64, b64 = d1.to(torch.float64), d2.to(torch.float64)
    r = b64 - (a64 @ b64) / (a64 @ a64) * a64
    rn = float(torch.linalg.vector_norm(r))
    bn = float(torch.linalg.vector_norm(b64))
    if rn <= 1e-12 * max(bn, 1e-300):
        raise ValueError("The two directions are parallel: they span a line, not a plane.")
    return [d1, (r * (bn / rn)).to(d2.dtype)], cos


def _coordinates(offset: Tensor, vectors: Sequence[Tensor]) -> tuple[list[float], float]:
    """Least-squares coordinates of ``offset`` in the span of ``vectors``, and the
    distance of ``offset`` from that span."""
    a = torch.stack([v.to(torch.float64) for v in vectors], dim=1)
    b = offset.to(torch.float64)
    gram = a.T @ a
    coef = torch.linalg.solve(gram, a.T @ b)
    resid = float(torch.linalg.vector_norm(b - a @ coef))
    return [float(c) for c in coef], resid


# --------------------------------------------------------------------------- kinds
def random_filter_normalized(problem: Problem, dims: int, *, seed: int,
                             bias_norm: BiasNorm = "zero",
                             normalization: Literal["filter", "none"] = "filter"
                             ) -> SliceDirections:
    """Gaussian directions, filter-normalised (Li et al. 2018, section 4).

    The Gaussians are drawn on the CPU in float64 from ``torch.Generator().manual_seed(seed)``
    (one after the other, in parameter order), so a seed gives the same directions on
    every device and dtype; then cast to the parameters' dtype and device.
    ``normalization="none"`` keeps the raw Gaussians (biases included).
    """
    gen = torch.Generator().manual_seed(int(seed))
    roles = parameter_roles(problem.model, problem.params)
    params = {k: v.detach() for k, v in problem.params.items()}
    vectors: list[Tensor] = []
    for _ in range(dims):
        raw = {k: torch.randn(tuple(v.shape), generator=gen, dtype=torch.float64)
               .to(device=v.device, dtype=v.dtype) for k, v in params.items()}
        d = filter_normalize(raw, params, roles, bias_norm) if normalization == "filter" else raw
        vectors.append(flatten(d))
    counts = {"filter": 0, "bias_norm": 0}
    for r in roles.values():
        counts[r] += 1
    return SliceDirections(
        origin=flatten(params), vectors=vectors,
        names=[f"random {i}" for i in range(dims)],
        info={"seed": int(seed), "normalization": normalization, "bias_norm": bias_norm,
              "filter_normalized_params": [k for k, r in roles.items() if r == "filter"],
              "bias_norm_params": [k for k, r in roles.items() if r == "bias_norm"]},
    )


def hessian_top(problem: Problem, dims: int, *, seed: int, tol: float = 1e-6,
                max_products: int = 1000, monitor: Monitor | None = None
                ) -> SliceDirections:
    """The top-``dims`` Hessian eigenvectors at ``problem.params`` (unit norm).

    Thick-restart Lanczos (:func:`..hessian.lanczos.lanczos_extremes`). Each vector's sign
    is fixed so that its largest-magnitude entry is positive. Along a unit eigenvector
    ``v`` with eigenvalue ``lambda``, ``d^2/dalpha^2 L(theta + alpha v) = lambda`` at 0.

    Raises:
        RuntimeError: when Lanczos did not converge within ``max_products``.
    """
    op = HessianOperator(problem)
    eig = lanczos_extremes(op, k_top=dims, k_bottom=0, tol=tol, max_products=max_products,
                           seed=seed, return_vectors=True, monitor=monitor,
                           stage="hessian_top")
    if eig.top_vectors is None or not eig.converged:
        rel = [float(r) / max(eig.norm_estimate, 1e-300) for r in eig.top_residuals]
        raise RuntimeError(
            f"The top-{dims} Hessian eigenvectors did not converge within {max_products} "
            f"products (relative residuals {rel}); raise options.hessian.max_products or "
            "options.hessian.tol."
        )
    vectors = []
    for j in range(dims):
        v = eig.top_vectors[:, j]
        v = v / torch.linalg.vector_norm(v)
        if float(v[torch.argmax(v.abs())]) < 0:
            v = -v
        vectors.append(v.to(problem.dtype))
    return SliceDirections(
        origin=flatten({k: v.detach() for k, v in problem.params.items()}), vectors=vectors,
        names=[f"eigenvector {j}" for j in range(dims)],
        info={"eigenvalues": [float(x) for x in eig.top],
              "residuals": [float(x) for x in eig.top_residuals],
              "products": int(eig.num_products), "seed": int(seed)},
    )


def plane_through(points: Sequence[Tensor], labels: Sequence[str], dims: int, *,
                  extra: Tensor | None = None) -> SliceDirections:
    """The line (2 points) or plane (3 points) through given points (Garipov et al. 2018).

    The origin is the first point; ``d1 = p1 - p0`` and, for a plane, ``d2 = p2 - p0``,
    so the points sit at ``(0, 0)``, ``(1, 0)`` and ``(0, 1)`` before any
    orthogonalisation. With 2 points and ``dims == 2`` the second direction is ``extra``
    (e.g. a filter-normalised random direction). Coordinates of every point are computed by
    least squares on the final directions (the runner orthogonalises first if asked).

    Raises:
        ValueError: on a wrong number of points or coincident points.
    """
    if len(points) not in (2, 3):
        raise ValueError(f"Expected 2 or 3 points, got {len(points)}.")
    if dims == 1 and len(points) != 2:
        raise ValueError("A 1-D slice goes through exactly 2 points.")
    origin = points[0]
    vectors = [points[1] - origin]
    if float(torch.linalg.vector_norm(vectors[0])) == 0.0:
        raise ValueError(f"{labels[0]} and {labels[1]} are the same point.")
    if dims == 2:
        if len(points) == 3:
            vectors.append(points[2] - origin)
        elif extra is not None:
            vectors.append(extra)
        else:
            raise ValueError("A plane through 2 points needs a second direction.")
    pts = [{"label": lab, "theta": p} for lab, p in zip(labels, points, strict=True)]
    return SliceDirections(origin=origin, vectors=vectors,
                           names=[f"{labels[1]} - {labels[0]}"]
                           + ([f"{labels[2]} - {labels[0]}" if len(points) == 3
                               else "random (filter-normalised)"] if dims == 2 else []),
                           points=pts)


def trajectory_pca(origin: Tensor, checkpoints: Sequence[Tensor], dims: int
                   ) -> SliceDirections:
    """Top principal directions of a trajectory around ``origin`` (Li et al. 2018, sec. 7).

    With ``M`` the ``(n, P)`` matrix of ``theta_i - origin``, the directions are the top
    right singular vectors of ``M - mean(M)`` (the PCA of the differences), unit norm;
    each checkpoint's coordinates are its projection ``(theta_i - origin) . d_j``.
    ``explained_variance_ratio`` is ``s_j^2 / sum s^2``.

    Raises:
        ValueError: with fewer than ``dims + 1`` checkpoints or a degenerate trajectory.
    """
    if len(checkpoints) < dims + 1:
        raise ValueError(f"trajectory_pca needs at least {dims + 1} checkpoints, got "
                         f"{len(checkpoints)}.")
    m = torch.stack([c.to(torch.float64) - origin.to(torch.float64) for c in checkpoints])
    centred = m - m.mean(dim=0, keepdim=True)
    # SVD through the small n x n Gram matrix: memory n^2 + n P.
    gram = centred @ centred.T
    evals, evecs = torch.linalg.eigh(gram)
    order = torch.argsort(evals, descending=True)
    evals, evecs = evals[order], evecs[:, order]
    total = float(evals.clamp_min(0).sum())
    if total <= 0 or float(evals[dims - 1]) <= 1e-12 * total:
        raise ValueError("The checkpoints do not spread over "
                         f"{dims} dimension(s): the trajectory is degenerate.")
    vectors = []
    for j in range(dims):
        v = centred.T @ evecs[:, j]
        v = v / torch.linalg.vector_norm(v)
        if float(v[torch.argmax(v.abs())]) < 0:
            v = -v
        vectors.append(v)
    coords = torch.stack([m @ v for v in vectors], dim=1)
    ratio = [float(x) / total for x in evals[:dims].clamp_min(0)]
    return SliceDirections(
        origin=origin, vectors=[v.to(origin.dtype) for v in vectors],
        names=[f"PC{j + 1}" for j in range(dims)], trajectory=coords,
        info={"explained_variance_ratio": ratio, "num_checkpoints": len(checkpoints)},
    )


def given_directions(origin: Tensor, vectors: Sequence[Tensor], labels: Sequence[str]
                     ) -> SliceDirections:
    """Directions supplied by the caller, used as they are."""
    for lab, v in zip(labels, vectors, strict=True):
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"Direction {lab} has non-finite entries.")
        if float(torch.linalg.vector_norm(v)) == 0.0:
            raise ValueError(f"Direction {lab} is zero.")
    return SliceDirections(origin=origin, vectors=list(vectors), names=list(labels))


def coordinates(dirs: SliceDirections) -> float:
    """Fill each point's ``alpha``/``beta`` by least squares; returns the largest distance
    of a point from the slice (0 up to rounding when the points lie in it)."""
    worst = 0.0
    for pt in dirs.points:
        coef, resid = _coordinates(pt["theta"] - dirs.origin, dirs.vectors)
        pt["alpha"] = coef[0]
        pt["beta"] = coef[1] if len(coef) > 1 else None
        pt["distance_from_slice"] = resid
        worst = max(worst, resid)
    return worst


def direction_report(dirs: SliceDirections, params_like: Params,
                     cosine_before: float | None = None) -> list[dict[str, Any]]:
    """Name, norm, relative norm (``||d|| / ||origin||``) and cosine with the others."""
    onorm = float(torch.linalg.vector_norm(dirs.origin.to(torch.float64)))
    out = []
    for i, (name, v) in enumerate(zip(dirs.names, dirs.vectors, strict=True)):
        n = float(torch.linalg.vector_norm(v.to(torch.float64)))
        per = unflatten(v, params_like)
        nonzero = [k for k, t in per.items() if bool((t != 0).any())]
        entry: dict[str, Any] = {"name": name, "norm": n,
                                 "relative_norm": n / onorm if onorm > 0 else None,
                                 "nonzero_params": nonzero}
        if len(dirs.vectors) == 2:
            entry["cosine"] = _cosine(dirs.vectors[0], dirs.vectors[1])
            if cosine_before is not None:
                entry["cosine_before_orthogonalization"] = cosine_before
        entry["index"] = i
        out.append(entry)
    return out

