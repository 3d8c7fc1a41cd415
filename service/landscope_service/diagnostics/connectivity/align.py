"""Permutation alignment of hidden units by weight matching.

Permuting the hidden units of a layer (rows of ``W_l`` and ``b_l``, the matching
batch-norm entries, and columns of ``W_{l+1}``) leaves the function of a network
unchanged, so every minimum comes with ``prod_l n_l!`` copies. Barriers and component
counts "modulo permutation" compare ``theta_a`` with the copy of ``theta_b`` closest to
it. Weight matching (Ainsworth, Hayase & Srinivasa 2023, "Git Re-Basin", section 3.2)
looks for permutations ``P_l`` maximising

    sum_l <W_l^a, P_l W_l^b P_{l-1}^T>_F + <b_l^a, P_l b_l^b>   (+ batch-norm terms),

by coordinate ascent: with all other permutations fixed, the best ``P_l`` solves a
linear assignment problem (``scipy.optimize.linear_sum_assignment``) over the cost
``C_pq = W_l^a[p] . (W_l^b P_{l-1}^T)[q] + b^a_p b^b_q + W_{l+1}^a[:, p] . (P_{l+1}
W_{l+1}^b)[:, q]``. Layers are visited in a seeded random order until no permutation
changes. Supported: ``nn.Sequential`` stacks of ``Linear`` layers with elementwise
activations (and ``BatchNorm1d``) between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from ..problem import Params, flatten, unflatten

__all__ = ["HiddenLayer", "align_flat", "apply_permutations", "hidden_layers", "weight_matching"]

#: Parameter-free modules that act elementwise (commute with unit permutations).
ELEMENTWISE = frozenset(
    {
        "ReLU",
        "Tanh",
        "Sigmoid",
        "LeakyReLU",
        "GELU",
        "SiLU",
        "Softplus",
        "Identity",
        "Quadratic",
        "ELU",
        "Hardtanh",
        "Mish",
        "Softsign",
        "Tanhshrink",
        "ReLU6",
        "SELU",
        "CELU",
        "LogSigmoid",
    }
)


@dataclass(frozen=True)
class HiddenLayer:
    """A permutable hidden layer: the Linear that produces it and what it feeds.

    Attributes:
        linear: module name of the producing ``Linear`` (``"0"``).
        width: number of hidden units.
        norms: names of ``BatchNorm1d`` modules acting on these units.
        next_linear: module name of the consuming ``Linear``.
    """

    linear: str
    width: int
    norms: tuple[str, ...]
    next_linear: str


def hidden_layers(model: nn.Module) -> list[HiddenLayer]:
    """The permutable hidden layers of a Sequential of Linear / elementwise modules.

    Raises:
        TypeError: if ``model`` is not such a stack.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(
            f"Permutation alignment needs an nn.Sequential, got {type(model).__name__}."
        )
    layers: list[HiddenLayer] = []
    current: str | None = None
    width = 0
    norms: list[str] = []
    for name, mod in model.named_children():
        if isinstance(mod, nn.Linear):
            if current is not None:
                layers.append(HiddenLayer(current, width, tuple(norms), name))
            current, width, norms = name, mod.out_features, []
        elif isinstance(mod, nn.BatchNorm1d):
            norms.append(name)
        elif type(mod).__name__ in ELEMENTWISE and not list(mod.parameters()):
            continue
        else:
            raise TypeError(
                "Permutation alignment supports nn.Sequential stacks of Linear, BatchNorm1d "
                f"and elementwise activations; got {type(mod).__name__} at index {name}."
            )
    return layers


def _perm_layer(params: Params, layer: HiddenLayer, perm: Tensor) -> None:
    w = f"{layer.linear}.weight"
    params[w] = params[w][perm]
    b = f"{layer.linear}.bias"
    if b in params:
        params[b] = params[b][perm]
    for n in layer.norms:
        for leaf in ("weight", "bias"):
            k = f"{n}.{leaf}"
            if k in params:
                params[k] = params[k][perm]
    nw = f"{layer.next_linear}.weight"
    params[nw] = params[nw][:, perm]


def apply_permutations(params: Params, layers: list[HiddenLayer], perms: list[Tensor]) -> Params:
    """``params`` with hidden units permuted: new unit ``p`` is old unit ``perm[p]``."""
    if len(perms) != len(layers):
        raise ValueError(f"Expected {len(layers)} permutations, got {len(perms)}.")
    out = dict(params)
    for layer, perm in zip(layers, perms, strict=True):
        if perm.shape != (layer.width,):
            raise ValueError(
                f"Shape mismatch: expected permutation ({layer.width},), got {tuple(perm.shape)}."
            )
        _perm_layer(out, layer, perm.to(device=params[f"{layer.linear}.weight"].device))
    return out


def weight_matching(
    params_a: Params,
    params_b: Params,
    layers: list[HiddenLayer],
    *,
    max_sweeps: int = 100,
    seed: int = 0,
) -> list[Tensor]:
    """Permutations of ``params_b``'s hidden units that best match ``params_a``.

    Returns one index tensor per hidden layer (``perm[p]`` = unit of b placed at p).
    """
    a = {k: v.detach().double().cpu() for k, v in params_a.items()}
    b = {k: v.detach().double().cpu() for k, v in params_b.items()}
    perms = [torch.arange(layer.width) for layer in layers]
    rng = np.random.default_rng(seed)

    def cost(idx: int) -> Tensor:
        layer = layers[idx]
        wa = a[f"{layer.linear}.weight"]
        wb = b[f"{layer.linear}.weight"]
        if idx > 0:  # input side permuted by the previous layer's permutation
            wb = wb[:, perms[idx - 1]]
        c = wa @ wb.T
        bias = f"{layer.linear}.bias"
        if bias in a:
            c = c + torch.outer(a[bias], b[bias])
        for n in layer.norms:
            for leaf in ("weight", "bias"):
                k = f"{n}.{leaf}"
                if k in a:
                    c = c + torch.outer(a[k], b[k])
        na = a[f"{layer.next_linear}.weight"]
        nb = b[f"{layer.next_linear}.weight"]
        if idx + 1 < len(layers):  # output side permuted by the next layer's permutation
            nb = nb[perms[idx + 1]]
        return c + na.T @ nb

    for _ in range(max_sweeps):
        changed = False
        for idx in rng.permutation(len(layers)):
            c = cost(int(idx)).numpy()
            rows, cols = linear_sum_assignment(c, maximize=True)
            new = torch.as_tensor(cols[np.argsort(rows)], dtype=torch.long)
            old = perms[int(idx)]
            if float(c[np.arange(len(new)), new.numpy()].sum()) > float(
                c[np.arange(len(old)), old.numpy()].sum()
            ) + 1e-12 * (1 + abs(float(c.sum()))):
                perms[int(idx)] = new
                changed = True
        if not changed:
            break
    return perms


def align_flat(
    model: nn.Module, like: Params, theta_a: Tensor, theta_b: Tensor, *, seed: int = 0
) -> tuple[Tensor, list[Tensor]]:
    """Flat ``theta_b`` permuted to match flat ``theta_a``; also the permutations."""
    layers = hidden_layers(model)
    pa = unflatten(theta_a, like)
    pb = unflatten(theta_b, like)
    if not layers:
        return theta_b, []
    perms = weight_matching(pa, pb, layers, seed=seed)
    aligned = apply_permutations(dict(pb), layers, perms)
    return flatten({k: aligned[k] for k in like}), perms
