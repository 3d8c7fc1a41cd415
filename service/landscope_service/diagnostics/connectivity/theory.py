"""The theory block of a connectivity result (THEORY.md, section 1).

Facts are read from the model itself: the widths of the ``Linear`` layers of an
``nn.Sequential`` and the class names of the modules between them (``ReLU``,
``Tanh``, ``Identity`` or nothing for a linear network, a module class named
``Quadratic`` for ``phi(z) = z^2``). Each theorem is reported with its hypotheses as
checked, its prediction and the measured counterpart beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from .mergetree import MergeTree

__all__ = [
    "CONFIRMED",
    "CONTRADICTED",
    "NOT_CONFIRMED",
    "ArchitectureFacts",
    "architecture_facts",
    "theory_block",
    "verdict",
]

_ACTIVATIONS = {
    "ReLU": "relu",
    "Tanh": "tanh",
    "Identity": "identity",
    "Quadratic": "quadratic",
    "Sigmoid": "sigmoid",
    "LeakyReLU": "leaky_relu",
    "Softplus": "softplus",
    "GELU": "gelu",
    "SiLU": "silu",
}


@dataclass(frozen=True)
class ArchitectureFacts:
    """What the theorems need to know about the network.

    Attributes:
        is_mlp: an ``nn.Sequential`` of Linear layers and parameter-free modules
            (batch norm allowed, recorded in ``batchnorm``).
        widths: ``[n_0, n_1, ..., n_L]``.
        activations: activation name between consecutive Linear layers
            (``"identity"`` when there is none), one per hidden layer.
        bias: some Linear layer has a bias.
        batchnorm: the model has batch-norm layers.
    """

    is_mlp: bool
    widths: list[int]
    activations: list[str]
    bias: bool
    batchnorm: bool


def architecture_facts(model: nn.Module) -> ArchitectureFacts:
    """Read widths and activations from a Sequential model."""
    if not isinstance(model, nn.Sequential):
        return ArchitectureFacts(False, [], [], False, False)
    widths: list[int] = []
    acts: list[str] = []
    pending: list[str] = []
    bias = False
    bn = False
    ok = True
    for mod in model.children():
        if isinstance(mod, nn.Linear):
            if not widths:
                widths.append(mod.in_features)
            else:
                nonid = [a for a in pending if a != "identity"]
                acts.append(
                    nonid[0] if len(nonid) == 1 else ("identity" if not nonid else "+".join(nonid))
                )
            widths.append(mod.out_features)
            bias = bias or mod.bias is not None
            pending = []
        elif isinstance(mod, nn.BatchNorm1d):
            bn = True
        elif not list(mod.parameters()):
            pending.append(_ACTIVATIONS.get(type(mod).__name__, type(mod).__name__.lower()))
        else:
            ok = False
    if pending:  # an activation after the last Linear layer
        ok = ok and all(a == "identity" for a in pending)
    return ArchitectureFacts(ok and len(widths) >= 2, widths, acts, bias, bn)


Verdict = str
"""``"confirmed"``, ``"not confirmed at this resolution"`` or ``"contradicted"``."""

CONFIRMED = "confirmed"
NOT_CONFIRMED = "not confirmed at this resolution"
CONTRADICTED = "contradicted"


def verdict(holds_on_upper_bounds: bool, contradicted: bool = False) -> Verdict:
    """The verdict on a prediction that measured upper bounds can confirm.

    Barriers are upper bounds and the only lower bound on a pair's barrier is
    ``max(L_i, L_j)``, so a measured N_lambda can only overcount components: a
    measurement that meets the prediction confirms it (within the noise level), one that
    does not meet it is "not confirmed at this resolution" (better paths may exist), and
    "contradicted" needs a proof from lower bounds (``contradicted``).
    """
    if contradicted:
        return CONTRADICTED
    return CONFIRMED if holds_on_upper_bounds else NOT_CONFIRMED


def theory_block(
    model: nn.Module,
    loss: str,
    num_samples: int,
    tree: MergeTree,
    grid: list[float],
) -> dict[str, Any]:
    """Theorems of THEORY.md section 1 beside their measured counterparts.

    Measured counts are over the minima sampled and with barriers that are upper
    bounds, so a measured ``N_lambda`` is an upper bound on the number of components
    of ``Omega(lambda)`` that contain those minima (true barriers can only be lower).
    """
    f = architecture_facts(model)
    hidden = f.widths[1:-1]
    n0 = f.widths[0] if f.widths else None
    nL = f.widths[-1] if f.widths else None
    alive_grid = [lam for lam in grid if any(lv <= lam for lv in tree.losses.tolist())]
    counts = [tree.n_lambda(lam) for lam in alive_grid]
    max_n = max(counts, default=0)
    spurious = [lam for lam in alive_grid if not all(tree.contains_global_min(lam))]
    # Excess barrier of every MST edge above its higher end.
    excess = [
        m.height - max(float(tree.losses[m.edge[0]]), float(tree.losses[m.edge[1]]))
        for m in tree.merges
    ]
    top_merge = max((m.effective_height for m in tree.merges), default=None)
    measured_common = {
        "max_n_lambda": max_n,
        "n_lambda_is_one_everywhere": bool(counts) and all(c == 1 for c in counts),
        "spurious_valley_found": bool(spurious),
    }

    linear = f.is_mlp and all(a == "identity" for a in f.activations) and not f.batchnorm
    width_ok = (
        bool(hidden) and n0 is not None and nL is not None and all(n > min(n0, nL) for n in hidden)
    )
    fb_applies = linear and loss == "mse" and not f.bias and width_ok
    raw_counts = [tree.n_lambda(lam, effective=False) for lam in alive_grid]
    fb_verdict = verdict(max_n <= 1) if fb_applies else None
    fb = {
        "statement": "Linear network, squared loss: if every hidden width n_l > "
        "min(n_0, n_L) then N_lambda = 1 for all lambda (Freeman & Bruna 2016).",
        "hypotheses": {
            "linear_network": linear,
            "squared_loss": loss == "mse",
            "no_bias": not f.bias,
            "width_condition": width_ok,
            "hidden_widths": hidden,
            "min_n0_nL": None if n0 is None or nL is None else min(n0, nL),
        },
        "applies": fb_applies,
        "predicted_n_lambda": 1 if fb_applies else None,
        "measured": {**measured_common, "max_n_lambda_raw": max(raw_counts, default=0)},
        "verdict": fb_verdict,
        "agrees": True if fb_verdict == CONFIRMED else None,
    }

    relu = f.is_mlp and bool(f.activations) and all(a == "relu" for a in f.activations)
    fb_relu = {
        "statement": "ReLU networks: for any widths some data distribution has "
        "N_lambda > 1 for some lambda (Freeman & Bruna 2016); a measurement may find "
        "one component or several.",
        "applies": relu,
        "measured": dict(measured_common),
    }

    two_layer = f.is_mlp and len(f.widths) == 3
    tl_relu = two_layer and f.activations == ["relu"]
    m_hidden = f.widths[1] if two_layer else None
    scale = float(m_hidden ** (-1.0 / n0)) if tl_relu and m_hidden and n0 else None
    venturi = {
        "statement": "Two-layer ReLU H(x) = W2 relu(W1 x), W1 in R^{m x n}: two parameters "
        "with L <= lambda are joined by a path with L <= max(lambda, eps), eps of order "
        "m^(-1/n) (constants depend on the data; a scale, not an exact bound).",
        "applies": tl_relu,
        "hypotheses": {"two_layer": two_layer, "relu": tl_relu, "m": m_hidden, "n": n0},
        "predicted_excess_scale": scale,
        "measured": {
            "max_excess_barrier": max(excess) if excess else None,
            "top_merge_height": top_merge,
        },
    }

    quad = two_layer and f.activations == ["quadratic"]
    quad_ok = quad and m_hidden is not None and m_hidden > 2 * num_samples
    quad_applies = bool(quad_ok and loss == "mse")
    quad_verdict = verdict(not spurious) if quad_applies else None
    quadratic = {
        "statement": "Two-layer network with phi(z) = z^2 and hidden width m > 2N: no "
        "spurious valleys, every component of every Omega(lambda) contains a global "
        "minimum (Venturi, Bandeira & Bruna 2019); N_lambda may still exceed 1.",
        "applies": quad_applies,
        "hypotheses": {
            "two_layer_quadratic": quad,
            "squared_loss": loss == "mse",
            "m": m_hidden,
            "two_N": 2 * num_samples,
            "width_condition": bool(quad_ok),
        },
        "predicts_no_spurious_valleys": quad_applies,
        "measured": {
            **measured_common,
            "lambdas_with_spurious_valley": [float(x) for x in spurious],
        },
        "verdict": quad_verdict,
        "agrees": True if quad_verdict == CONFIRMED else None,
    }
    return {
        "architecture": {
            "is_sequential_mlp": f.is_mlp,
            "widths": f.widths,
            "activations": f.activations,
            "bias": f.bias,
            "batchnorm": f.batchnorm,
        },
        "note": "Barriers are upper bounds on minimax barriers, so measured N_lambda is an "
        "upper bound on the number of components of Omega(lambda) holding the sampled "
        "minima; components without sampled minima are not seen. 'Global minimum' means "
        "the lowest loss among the minima found. Verdicts: 'confirmed' (the measurement "
        "meets the prediction, merges below the noise level counted as joined), 'not "
        "confirmed at this resolution' (it does not, but better paths may exist: measured "
        "counts can only overcount), 'contradicted' (never from upper bounds alone); "
        "'agrees' is true when confirmed and null otherwise.",
        "noise_level": tree.tolerance,
        "freeman_bruna_linear": fb,
        "freeman_bruna_relu": fb_relu,
        "two_layer_relu_scale": venturi,
        "quadratic_width": quadratic,
        "global_min_loss": tree.global_min if math.isfinite(tree.global_min) else None,
    }
