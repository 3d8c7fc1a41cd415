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
activations (and ``BatchNorm1d``) between them, and ``graph`` models.

Graph models carry a ``permutation_spec`` (built with the module from the graph,
``modelspec.graph_perm``): permutation groups, each naming the (tensor, axis) pairs it
permutes, in the style of Git Re-Basin's permutation specs (channels through convs and
norms, residual adds tying groups, attention heads as wholes). Weight matching is then
the paper's general form: for group ``p``, with every other group fixed,

    C_pq = sum_{(W, axis) in p} <W^a viewed (n_p, -1), (W^b with the other groups'
           permutations applied) viewed (n_p, -1)>,

solved by ``linear_sum_assignment``; groups are visited in a seeded random order until
none changes. A group that permutes batch-norm running statistics is used only when
those statistics are the same for every channel (minima share the problem's buffers,
so channels with different statistics are not interchangeable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from ..problem import Params, flatten, unflatten

__all__ = [
    "HiddenLayer",
    "align_flat",
    "alignment_groups",
    "apply_permutations",
    "check_alignable",
    "hidden_layers",
    "weight_matching",
    "weight_matching_spec",
]

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

    A graph model has no such layers: its permutation groups come from
    :func:`alignment_groups`; for it this only checks that some group exists and
    returns ``[]``.

    Raises:
        TypeError: if ``model`` is not such a stack (for a graph model: if no group
            survives, naming the node that pins the channels).
    """
    if getattr(model, "permutation_spec", None) is not None:
        alignment_groups(model)
        return []
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


# ---------------------------------------------------------------------------- graph models
def _view(t: Tensor, axis: Any) -> Tensor:
    """``t`` with the permuted axis first, as ``(n, -1)``."""
    moved = t.movedim(axis.axis, 0)
    n = moved.shape[0] // (axis.repeat * axis.block)
    v = moved.reshape(axis.repeat, n, axis.block, -1)
    return v.permute(1, 0, 2, 3).reshape(n, -1)


def _permute_axis(t: Tensor, axis: Any, perm: Tensor) -> Tensor:
    moved = t.movedim(axis.axis, 0)
    shape = moved.shape
    n = shape[0] // (axis.repeat * axis.block)
    v = moved.reshape(axis.repeat, n, axis.block, -1)[:, perm.to(t.device)]
    return v.reshape(shape).movedim(0, axis.axis)


def alignment_groups(model: nn.Module) -> list[Any]:
    """The permutation groups of a graph model that alignment may use.

    Groups whose batch-norm running statistics differ between channels are dropped.

    Raises:
        TypeError: ``model`` is not a graph model, or no group survives (the message
            names the node that pinned the channels).
    """
    spec = getattr(model, "permutation_spec", None)
    if spec is None:
        raise TypeError(f"{type(model).__name__} has no permutation spec.")
    buffers = dict(model.named_buffers())
    groups = []
    for group in spec.groups:
        stats = [buffers[a.key] for a in group.axes if a.buffer and a.key in buffers]
        if any(t.numel() and bool((t != t.reshape(-1)[0]).any()) for t in stats):
            continue
        groups.append(group)
    if not groups:
        why = spec.pinned[0] if spec.pinned else "it has no hidden layer"
        raise TypeError(
            f"Permutation alignment finds no permutable group in this graph: {why}."
        )
    return groups


def check_alignable(model: nn.Module) -> None:
    """Raise ``TypeError`` (with the reason) when ``model`` cannot be aligned."""
    hidden_layers(model)


def weight_matching_spec(
    params_a: Params,
    params_b: Params,
    groups: list[Any],
    *,
    max_sweeps: int = 100,
    seed: int = 0,
) -> list[Tensor]:
    """Permutations of ``params_b``'s groups that best match ``params_a`` (Git Re-Basin).

    Returns one index tensor per group (``perm[p]`` = index of b placed at p).
    """
    a = {k: v.detach().double().cpu() for k, v in params_a.items()}
    b = {k: v.detach().double().cpu() for k, v in params_b.items()}
    perms = [torch.arange(g.size) for g in groups]
    on_key: dict[str, list[tuple[int, Any]]] = {}
    for gi, g in enumerate(groups):
        for ax in g.axes:
            if not ax.buffer and ax.key in a:
                on_key.setdefault(ax.key, []).append((gi, ax))
    rng = np.random.default_rng(seed)

    def permuted_b(key: str, skip: int) -> Tensor:
        t = b[key]
        for gi, ax in on_key[key]:
            if gi != skip:
                t = _permute_axis(t, ax, perms[gi])
        return t

    for _ in range(max_sweeps):
        changed = False
        for gi in rng.permutation(len(groups)):
            gi = int(gi)
            n = groups[gi].size
            c = torch.zeros(n, n, dtype=torch.float64)
            for key, entries in on_key.items():
                for g2, ax in entries:
                    if g2 == gi:
                        c += _view(a[key], ax) @ _view(permuted_b(key, gi), ax).T
            cn = c.numpy()
            rows, cols = linear_sum_assignment(cn, maximize=True)
            new = torch.as_tensor(cols[np.argsort(rows)], dtype=torch.long)
            old = perms[gi]
            gain = float(cn[np.arange(n), new.numpy()].sum()) - float(
                cn[np.arange(n), old.numpy()].sum()
            )
            if gain > 1e-12 * (1 + float(np.abs(cn).sum())):
                perms[gi] = new
                changed = True
        if not changed:
            break
    return perms


def _apply_spec(params: Params, groups: list[Any], perms: list[Tensor]) -> Params:
    out = dict(params)
    for g, perm in zip(groups, perms, strict=True):
        for ax in g.axes:
            if not ax.buffer and ax.key in out:
                out[ax.key] = _permute_axis(out[ax.key], ax, perm)
    return out


def align_flat(
    model: nn.Module, like: Params, theta_a: Tensor, theta_b: Tensor, *, seed: int = 0
) -> tuple[Tensor, list[Tensor]]:
    """Flat ``theta_b`` permuted to match flat ``theta_a``; also the permutations."""
    if getattr(model, "permutation_spec", None) is not None:
        groups = alignment_groups(model)
        pa = unflatten(theta_a, like)
        pb = unflatten(theta_b, like)
        perms = weight_matching_spec(pa, pb, groups, seed=seed)
        aligned = _apply_spec(dict(pb), groups, perms)
        return flatten({k: aligned[k] for k in like}), perms
    layers = hidden_layers(model)
    pa = unflatten(theta_a, like)
    pb = unflatten(theta_b, like)
    if not layers:
        return theta_b, []
    perms = weight_matching(pa, pb, layers, seed=seed)
    aligned = apply_permutations(dict(pb), layers, perms)
    return flatten({k: aligned[k] for k in like}), perms
