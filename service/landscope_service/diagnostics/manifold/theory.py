"""The theory block of ``minimizer_manifold``: Cooper's theorem and its hypotheses.

Cooper (2018, "The loss landscape of overparameterized neural networks"; 2021, SIAM J.
Math. Data Sci. 3(2), "Global minima of overparameterized neural networks"), as stated in
THEORY.md section 2: for a network with smooth nonlinear activation, P parameters, N
distinct data points and r outputs, with squared loss, the zero-loss set is, after an
arbitrarily small generic perturbation, empty or a smooth submanifold of dimension
``P - rN``.

How the facts are read from the model. Only leaf modules (modules without children) are
classified, by class name, so that the builder's own module classes need no import:

* smooth nonlinear: Tanh, Sigmoid, Softplus, GELU, SiLU, Mish, Softsign, LogSigmoid,
  ELU / CELU (C^1 only for alpha != 1, reported), and Quadratic (``z**2``, a polynomial);
* piecewise linear: ReLU, LeakyReLU, PReLU, RReLU, ReLU6, Hardtanh, MaxPool*;
* affine: Linear, Bilinear-free layers Conv*, AvgPool*, Flatten, Unflatten, Identity,
  and Dropout (a no-op in eval mode);
* normalisation: BatchNorm*, LayerNorm, GroupNorm (smooth, but batch statistics couple
  the samples: outside the theorem's setting);
* anything else: unknown, and the hypothesis is then reported as not verified.

Containers with a custom ``forward`` (e.g. a residual block adding its input) are taken
to combine their children affinely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ActivationFacts", "activation_facts", "distinct_points", "theory_block"]

_SMOOTH = {
    "Tanh", "Sigmoid", "Softplus", "GELU", "SiLU", "Mish", "Softsign", "LogSigmoid",
    "ELU", "CELU", "Quadratic",
}
_POLYNOMIAL_DEGREE = {"Quadratic": 2}
_PIECEWISE_LINEAR = {
    "ReLU", "LeakyReLU", "PReLU", "RReLU", "ReLU6", "Hardtanh",
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
}
_AFFINE = {
    "Linear", "Conv1d", "Conv2d", "Conv3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "Flatten", "Unflatten", "Identity",
    "Dropout", "Dropout1d", "Dropout2d",
}
_NORMALISATION = {
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm",
}


@dataclass(frozen=True)
class ActivationFacts:
    """What the model's leaf modules say about the hypotheses.

    Attributes:
        smooth: class names of smooth nonlinear activations found.
        piecewise_linear: class names of piecewise-linear nonlinearities found.
        normalisation: normalisation layers found.
        unknown: leaf classes not classified.
        polynomial_degree: product of the degrees of polynomial activations along the
            network (e.g. 2 for one Quadratic layer, 4 for two) when every nonlinearity
            is polynomial, else None.
        kind: ``"smooth"``, ``"polynomial"``, ``"piecewise_linear"``, ``"linear"``,
            ``"mixed"`` or ``"unknown"``.
    """

    smooth: tuple[str, ...]
    piecewise_linear: tuple[str, ...]
    normalisation: tuple[str, ...]
    unknown: tuple[str, ...]
    polynomial_degree: int | None
    kind: str


def activation_facts(model: nn.Module) -> ActivationFacts:
    """Classify the model's leaf modules by class name (see the module docstring)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"Expected a torch.nn.Module, got {type(model).__name__}.")
    smooth: list[str] = []
    pl: list[str] = []
    norm: list[str] = []
    unknown: list[str] = []
    degree = 1
    for mod in model.modules():
        if any(True for _ in mod.children()):
            continue
        name = type(mod).__name__
        if name in _SMOOTH:
            smooth.append(name)
            degree *= _POLYNOMIAL_DEGREE.get(name, 0)
        elif name in _PIECEWISE_LINEAR:
            pl.append(name)
        elif name in _NORMALISATION:
            norm.append(name)
        elif name not in _AFFINE:
            unknown.append(name)
    if unknown:
        kind = "unknown"
    elif smooth and pl:
        kind = "mixed"
    elif pl:
        kind = "piecewise_linear"
    elif smooth:
        kind = "polynomial" if degree > 0 else "smooth"
    else:
        kind = "linear"
    poly = degree if kind == "polynomial" else None
    return ActivationFacts(
        tuple(dict.fromkeys(smooth)), tuple(dict.fromkeys(pl)), tuple(dict.fromkeys(norm)),
        tuple(dict.fromkeys(unknown)), poly, kind,
    )


def distinct_points(x: Tensor) -> tuple[int, float | None]:
    """Number of distinct rows of ``x`` and the smallest pairwise distance.

    The distance is computed for ``N <= 4096`` (``N^2`` memory), else None.
    """
    flat = x.detach().reshape(x.shape[0], -1)
    n_unique = int(torch.unique(flat, dim=0).shape[0])
    dmin: float | None = None
    n = int(flat.shape[0])
    if 2 <= n <= 4096:
        d = torch.cdist(flat.to(torch.float64), flat.to(torch.float64))
        d.fill_diagonal_(math.inf)
        dmin = float(d.min())
    return n_unique, dmin


def _has_bias(model: nn.Module) -> bool:
    """Whether any module carries a ``bias`` tensor (Linear, Conv, ...)."""
    return any(isinstance(getattr(mod, "bias", None), Tensor) for mod in model.modules())


def _linear_function_space_dim(model: nn.Module, n_in: int, r: int) -> int:
    """Upper bound on ``rank(J)`` for an affine network: dim of (affine) linear maps
    R^n0 -> R^r, ``r (n0 + 1)`` with biases, ``r n0`` without."""
    return r * (n_in + (1 if _has_bias(model) else 0))


def theory_block(
    *,
    model: nn.Module,
    x: Tensor,
    loss: str,
    num_params: int,
    num_samples: int,
    num_outputs: int,
    interpolated: bool,
    rank: int,
    hessian_nullity: int | None,
) -> dict[str, Any]:
    """The ``theory`` block: hypotheses checked, prediction beside measurement.

    Args:
        model: the network (structure only).
        x: inputs ``(N, ...)``.
        loss: the problem's loss name.
        num_params: P; num_samples: N; num_outputs: r.
        interpolated: whether the fit reached the loss tolerance.
        rank: numerical rank of ``J`` at the fitted point.
        hessian_nullity: nullity of the loss Hessian there (None if not computed).

    Returns:
        ``{"theorem", "applies", "hypotheses": [{"name", "holds", "detail"}],
        "predicted_dimension", "measured_dimension", "agrees", "notes"}``; ``holds`` is
        True, False or None (could not be verified).
    """
    P, N, r = num_params, num_samples, num_outputs
    m = r * N
    facts = activation_facts(model)
    n_in = int(x[0].numel()) if N > 0 else 0
    hyps: list[dict[str, Any]] = []
    notes: list[str] = []

    hyps.append({
        "name": "squared loss",
        "holds": loss == "mse",
        "detail": f"loss = {loss!r}; the theorem is about exact fits of the squared loss",
    })

    if facts.kind in ("smooth", "polynomial"):
        act_holds: bool | None = True
        act_detail = f"smooth nonlinear activations: {', '.join(facts.smooth)}"
    elif facts.kind == "linear":
        act_holds = False
        act_detail = "no nonlinear activation: the network is affine (identity activation)"
    elif facts.kind == "piecewise_linear":
        act_holds = False
        act_detail = (
            f"piecewise-linear nonlinearities ({', '.join(facts.piecewise_linear)}) are not "
            "smooth"
        )
    elif facts.kind == "mixed":
        act_holds = False
        act_detail = (
            f"smooth ({', '.join(facts.smooth)}) and piecewise-linear "
            f"({', '.join(facts.piecewise_linear)}) nonlinearities: not smooth"
        )
    else:
        act_holds = None
        act_detail = (
            f"unclassified modules ({', '.join(facts.unknown)}): smoothness not verified"
        )
    if facts.normalisation:
        act_detail += (
            f"; normalisation layers ({', '.join(facts.normalisation)}) couple samples "
            "through batch statistics, outside the theorem's per-sample setting"
        )
        if act_holds:
            act_holds = None
    hyps.append({"name": "smooth nonlinear activation", "holds": act_holds,
                 "detail": act_detail})

    n_unique, dmin = distinct_points(x)
    dist_detail = f"{n_unique} distinct inputs among N = {N}"
    if dmin is not None:
        dist_detail += f"; smallest pairwise distance {dmin:.3e}"
    hyps.append({"name": "distinct data points", "holds": n_unique == N,
                 "detail": dist_detail})

    hyps.append({
        "name": "overparameterised (P >= rN)",
        "holds": P >= m,
        "detail": f"P = {P}, rN = {r} * {N} = {m}"
        + ("" if P >= m else ": generically no exact fit exists (the zero set is empty)"),
    })

    if facts.kind == "polynomial" and facts.polynomial_degree is not None:
        d = facts.polynomial_degree
        if _has_bias(model):
            bound = r * math.comb(n_in + d, d)
            space = f"a polynomial of degree <= {d} in n0 = {n_in} inputs, a space of " \
                f"dimension C(n0 + {d}, {d})"
        else:
            bound = r * math.comb(n_in + d - 1, d)
            space = f"a homogeneous polynomial of degree {d} in n0 = {n_in} inputs (no " \
                f"biases), a space of dimension C(n0 + {d - 1}, {d})"
        hyps.append({
            "name": "expressive enough (polynomial activation)",
            "holds": m <= bound,
            "detail": (
                f"every output is {space}; so rank(J) <= {bound}"
                + ("" if m <= bound else f" < rN = {m}: J cannot have full row rank")
            ),
        })

    if interpolated:
        gen_holds: bool | None = rank == min(m, P)
        gen_detail = (
            f"checked at the fitted point: rank(J) = {rank}, full row rank rN = {m} is "
            "the regular-value condition that genericity guarantees"
        )
        if not gen_holds:
            gen_detail += " (it fails here)"
    else:
        gen_holds = None
        gen_detail = "not checked: no exact fit was reached"
    hyps.append({"name": "genericity (0 a regular value of the output map)",
                 "holds": gen_holds, "detail": gen_detail})

    # the theorem's own hypotheses; genericity is its conclusion's regularity, reported
    core = [h for h in hyps if not h["name"].startswith("genericity")]
    applies = all(h["holds"] is True for h in core)
    predicted = P - m
    measured = P - rank if interpolated else None
    agrees = (measured == predicted) if measured is not None else None

    if predicted < 0:
        notes.append(
            f"P - rN = {predicted} < 0: the theorem predicts no exact fit for generic data."
        )
    if not interpolated:
        notes.append(
            "The loss tolerance was not reached, so no point of the zero set was found; "
            "the measured dimension is not defined."
        )
    if facts.kind == "linear":
        bound = _linear_function_space_dim(model, n_in, r)
        form = "r (n0 + 1)" if _has_bias(model) else "r n0"
        notes.append(
            "The theorem does not apply to linear networks. H(x) = W_L ... W_1 x (+ b) "
            f"ranges over affine maps only, so rank(J) <= {form} = {bound} whatever N "
            "is, and the zero set is invariant under W_{l+1} -> W_{l+1} A^-1, "
            "W_l -> A W_l for every A in GL(n_l): its dimension exceeds P - rN when "
            f"rN > {bound}."
        )
    if facts.kind in ("piecewise_linear", "mixed"):
        notes.append(
            "The theorem does not apply to piecewise-linear activations (ReLU): the zero set "
            "is a union of pieces on which the network is linear in each weight block, and "
            "dead or saturated units add flat directions. Measured anyway."
        )
    if facts.kind == "polynomial":
        notes.append(
            "Quadratic (polynomial) activation: smooth, but the function space is finite "
            "dimensional, so the rank of J is bounded independently of N."
        )
    if hessian_nullity is not None and interpolated:
        notes.append(
            f"Hessian nullity at the fitted point: {hessian_nullity} "
            f"({'equal to' if hessian_nullity == P - rank else 'different from'} "
            f"P - rank(J) = {P - rank}); at an exact fit H = (2/(rN)) J^T J."
        )
    if interpolated and applies and agrees is False:
        notes.append(
            "The hypotheses hold but the measured dimension differs from P - rN: the "
            "fitted point is not a regular point (non-generic weights or data), or the "
            "rank tolerance is too coarse for this spectrum (see the gap at the cut)."
        )
    return {
        "theorem": "Cooper 2018/2021",
        "applies": applies,
        "hypotheses": hyps,
        "predicted_dimension": predicted,
        "measured_dimension": measured,
        "agrees": agrees,
        "notes": notes,
    }
