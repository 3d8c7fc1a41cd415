"""Permutation symmetries of a graph architecture, derived from its nodes (no torch).

Git Re-Basin (Ainsworth, Hayase & Srinivasa 2023, section 3 and appendix "permutation
specs") describes a network's weight-space symmetries by *permutation groups*: a group
permutes one hidden axis, and names every (parameter, axis) it acts on. Here the groups
come from the graph by propagating a label per dimension of every value:

* ``linear``/``conv``/``embedding`` outputs start a new group (their output features or
  channels); the weight's input axis takes the input's group.
* channels pass through batch norm (per-channel weight, bias and running statistics),
  layer norm over one trailing dimension, group norm with 1 or C groups, elementwise
  activations, dropout, softmax, pooling, ``mean``/``sum``, ``transpose``/``permute``,
  slices and reshapes that leave the dimension whole, and flatten when the other merged
  dimensions have size 1;
* a binary ``add``/``sub``/``mul``/``div`` ties the groups it adds (residual connections:
  one permutation for the whole stage); a ``parameter`` added to a value takes its groups;
* ``multihead_attention`` permutes its heads as wholes (the same head permutation on the
  query, key and value rows of ``in_proj_weight``/``in_proj_bias`` and on the columns of
  ``out_proj.weight``); its output starts a new group (``out_proj``'s rows); query, key
  and value inputs share one group;
* anything else pins the groups it touches (the network input and output, ``cat`` and
  ``pad`` along a grouped dimension, grouped convolutions, reshapes that split a grouped
  dimension, ...); the reason is kept, naming the node.

A pinned group is not permuted. :func:`permutation_spec` returns the surviving groups
with the axes they act on, as plain data the numerical core reads from the built module.
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import ACTIVATION_OPS, GraphInfo, GraphNode

__all__ = ["PermAxis", "PermGroup", "PermSpec", "permutation_spec"]


@dataclass(frozen=True)
class PermAxis:
    """One axis of one tensor a group permutes.

    The axis has length ``repeat * size * block``; viewed as ``(repeat, size, block)``,
    the permutation acts on the middle dimension (``block > 1``: whole attention heads;
    ``repeat = 3``: the query, key and value parts of ``in_proj_weight``).
    """

    key: str
    axis: int
    repeat: int = 1
    block: int = 1
    buffer: bool = False


@dataclass(frozen=True)
class PermGroup:
    """A permutation group: its size, the node that made it and the axes it acts on."""

    name: str
    size: int
    axes: tuple[PermAxis, ...]


@dataclass(frozen=True)
class PermSpec:
    """The permutable groups of a graph and why others were pinned (node-named reasons)."""

    groups: tuple[PermGroup, ...]
    pinned: tuple[str, ...]


class _Groups:
    """Union-find over group ids; id 0 is the pinned class."""

    def __init__(self) -> None:
        self.parent: list[int] = [0]
        self.size: list[int] = [0]
        self.origin: list[str] = [""]
        self.reasons: list[str] = []

    def new(self, size: int, origin: str) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.origin.append(origin)
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int | None, b: int | None, why: str) -> None:
        ra = 0 if a is None else self.find(a)
        rb = 0 if b is None else self.find(b)
        if ra == rb:
            return
        if ra == 0 or rb == 0:
            live = rb if ra == 0 else ra
            if live:
                self.reasons.append(why)
            self.parent[live] = 0
            return
        lo, hi = min(ra, rb), max(ra, rb)
        self.parent[hi] = lo  # the group keeps the name of its earliest member

    def pin(self, g: int | None, why: str) -> None:
        if g is not None and self.find(g) != 0:
            self.reasons.append(why)
            self.parent[self.find(g)] = 0


Labels = tuple[int | None, ...]


def permutation_spec(info: GraphInfo) -> PermSpec:
    """The permutation groups of a checked graph (see the module docstring).

    Args:
        info: from :func:`.graph.analyze_graph`.

    Returns:
        The groups that survive, each with the (parameter or buffer, axis) pairs it
        permutes, and the reasons the others were pinned.
    """
    uf = _Groups()
    labels: dict[str, Labels] = {info.input_name: (None,) * len(info.input_shape)}
    batched = {info.input_name: True, **{n.name: n.batched for n in info.nodes}}
    axes: list[tuple[int, PermAxis]] = []  # group id, axis
    shared_done: set[str] = set()

    def where(node: GraphNode) -> str:
        return f"node {node.name!r} ({node.op})"

    def attach(g: int | None, ax: PermAxis) -> None:
        if g is not None:
            axes.append((g, ax))

    for node in info.nodes:
        a = node.attrs
        ins = [labels[s] for s in node.inputs]
        first = node.module not in shared_done
        m = node.module
        out: Labels
        op = node.op
        if op in ("parameter", "buffer"):
            out = tuple(uf.new(s, node.name) if s > 1 else None for s in node.out_shape)
            for i, g in enumerate(out):
                attach(g, PermAxis(m, i, buffer=op == "buffer"))
        elif op in ACTIVATION_OPS or op in ("dropout", "softmax", "log_softmax"):
            out = ins[0]
        elif op == "linear":
            g = uf.new(a["out_features"], node.name)
            if first:
                attach(ins[0][-1], PermAxis(f"{m}.weight", 1))
                attach(g, PermAxis(f"{m}.weight", 0))
                if a["bias"]:
                    attach(g, PermAxis(f"{m}.bias", 0))
                shared_done.add(m)
                out = (*ins[0][:-1], g)
            else:
                out = _reuse(uf, node, ins[0], axes, m, where(node))
        elif op in ("conv1d", "conv2d"):
            spatial = len(node.out_shape) - 1
            if a["groups"] != 1:
                uf.pin(ins[0][0], f"{where(node)}: a grouped convolution ties its channels "
                                  "to their group")
                g = None
            else:
                g = uf.new(a["out_channels"], node.name)
            if first:
                if g is not None:
                    attach(ins[0][0], PermAxis(f"{m}.weight", 1))
                    attach(g, PermAxis(f"{m}.weight", 0))
                    if a["bias"]:
                        attach(g, PermAxis(f"{m}.bias", 0))
                shared_done.add(m)
                out = (g, *([None] * spatial))
            else:
                out = _reuse(uf, node, ins[0], axes, m, where(node), channel_first=True)
        elif op in ("batchnorm1d", "batchnorm2d"):
            g = ins[0][0]
            if first:
                if a["affine"]:
                    attach(g, PermAxis(f"{m}.weight", 0))
                    attach(g, PermAxis(f"{m}.bias", 0))
                attach(g, PermAxis(f"{m}.running_mean", 0, buffer=True))
                attach(g, PermAxis(f"{m}.running_var", 0, buffer=True))
                shared_done.add(m)
            else:
                uf.pin(g, f"{where(node)}: a norm applied twice")
            out = ins[0]
        elif op == "layernorm":
            k = len(a["normalized_shape"])
            if k == 1 and first:
                g = ins[0][-1]
                if a["elementwise_affine"]:
                    attach(g, PermAxis(f"{m}.weight", 0))
                    if a["bias"]:
                        attach(g, PermAxis(f"{m}.bias", 0))
                shared_done.add(m)
            else:
                for g in ins[0][-k:]:
                    uf.pin(g, f"{where(node)}: normalises several dimensions together")
            out = ins[0]
        elif op == "groupnorm":
            g = ins[0][0]
            c = node.in_shapes[0][0]
            if a["num_groups"] in (1, c) and first:
                if a["affine"]:
                    attach(g, PermAxis(f"{m}.weight", 0))
                    attach(g, PermAxis(f"{m}.bias", 0))
                shared_done.add(m)
            else:
                uf.pin(g, f"{where(node)}: its channel groups fix the channel order")
            out = ins[0]
        elif op == "embedding":
            g = uf.new(a["embedding_dim"], node.name)
            if first:
                attach(g, PermAxis(f"{m}.weight", 1))
                shared_done.add(m)
            else:
                uf.pin(g, f"{where(node)}: an embedding applied twice")
            out = (*ins[0], g)
        elif op == "multihead_attention":
            src = ins[0][-1]
            for other in ins[1:]:
                uf.union(src, other[-1], f"{where(node)}: query, key and value feed one "
                                         "projection")
            heads = a["num_heads"]
            e = node.in_shapes[0][-1]
            h = uf.new(heads, node.name + ".heads") if heads > 1 else None
            g = uf.new(e, node.name)
            if first:
                attach(src, PermAxis(f"{m}.in_proj_weight", 1))
                attach(h, PermAxis(f"{m}.in_proj_weight", 0, repeat=3, block=e // heads))
                if a["bias"]:
                    attach(h, PermAxis(f"{m}.in_proj_bias", 0, repeat=3, block=e // heads))
                attach(h, PermAxis(f"{m}.out_proj.weight", 1, block=e // heads))
                attach(g, PermAxis(f"{m}.out_proj.weight", 0))
                if a["bias"]:
                    attach(g, PermAxis(f"{m}.out_proj.bias", 0))
                shared_done.add(m)
            else:
                uf.pin(src, f"{where(node)}: an attention layer applied twice")
                uf.pin(h, f"{where(node)}: an attention layer applied twice")
                g = None
            out = (*ins[0][:-1], g)
        elif op in ("add", "sub", "mul", "div"):
            out = ins[0] if len(ins) == 1 else _tie(
                uf, ins, node, [batched[s] for s in node.inputs], where(node))
        elif op == "mean" or op == "sum":
            rank = len(ins[0]) + 1
            dims = {(d + rank if d < 0 else d) - 1 for d in a["dims"]}
            if a["keepdim"]:  # a sum over a permuted dimension is invariant
                out = tuple(None if i in dims else g for i, g in enumerate(ins[0]))
            else:
                out = tuple(g for i, g in enumerate(ins[0]) if i not in dims)
        elif op in ("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
                    "adaptive_avg_pool1d", "adaptive_avg_pool2d"):
            out = (ins[0][0], *([None] * (len(ins[0]) - 1)))
        elif op == "identity":
            out = ins[0]
        elif op == "transpose":
            rank = len(ins[0]) + 1
            lst = list(ins[0])
            d0 = (a["dim0"] + rank if a["dim0"] < 0 else a["dim0"]) - 1
            d1 = (a["dim1"] + rank if a["dim1"] < 0 else a["dim1"]) - 1
            lst[d0], lst[d1] = lst[d1], lst[d0]
            out = tuple(lst)
        elif op == "permute":
            rank = len(ins[0]) + 1
            out = tuple(ins[0][(d + rank if d < 0 else d) - 1] for d in a["dims"][1:])
        elif op == "flatten":
            out = _flatten(uf, node, ins[0], where(node))
        elif op == "reshape":
            out = _reshape(uf, node, ins[0], where(node))
        elif op == "slice":
            lst = []
            for i, g in enumerate(ins[0]):
                entry = a["index"][i] if i < len(a["index"]) else [None, None, 1]
                if isinstance(entry, int):
                    uf.pin(g, f"{where(node)}: selects one entry of a permuted dimension")
                    continue
                full = entry[0] in (None, 0) and entry[1] is None and entry[2] == 1
                if not full:
                    uf.pin(g, f"{where(node)}: slices part of a permuted dimension")
                lst.append(g if full else None)
            out = tuple(lst)
        else:  # cat, pad, scaled_dot_product_attention and anything new: pin everything
            for lab in ins:
                for g in lab:
                    uf.pin(g, f"{where(node)}: {op} mixes positions of a permuted dimension")
            out = (None,) * len(node.out_shape)
        labels[node.name] = out

    for g in labels[info.output]:
        uf.pin(g, f"node {info.output!r}: the network's outputs keep their order")

    by_root: dict[int, list[PermAxis]] = {}
    for g, ax in axes:
        root = uf.find(g)
        if root:
            by_root.setdefault(root, []).append(ax)
    groups = tuple(
        PermGroup(uf.origin[root], uf.size[root], tuple(dict.fromkeys(axs)))
        for root, axs in sorted(by_root.items())
        if uf.size[root] > 1 and any(not ax.buffer for ax in axs)
    )
    return PermSpec(groups, tuple(dict.fromkeys(uf.reasons)))


def _tie(uf: _Groups, ins: list[Labels], node: GraphNode, batched: list[bool],
         why: str) -> Labels:
    """Broadcast two values (right-aligned on full shapes), tying groups at one position."""
    full = []
    for lab, shape, b in zip(ins, node.in_shapes, batched, strict=True):
        full.append(([None, *lab], [-1, *shape]) if b else (list(lab), list(shape)))
    rank = max(len(f[0]) for f in full)
    out: list[int | None] = []
    for i in range(rank):
        here = []
        for lab, shape in full:
            j = i - (rank - len(lab))
            if j >= 0:
                here.append((lab[j], shape[j]))
        wide = [(g, s) for g, s in here if s != 1]
        for g, s in here:
            if s == 1 and g is not None:
                uf.pin(g, f"{why}: broadcasts a permuted dimension")
        if not wide:
            out.append(None)
            continue
        first = wide[0][0]
        for g, _ in wide[1:]:
            reason = why if first is not None and g is not None else (
                f"{why}: combines a permuted dimension with a fixed one")
            uf.union(first, g, reason)
        out.append(None if any(g is None for g, _ in wide) else first)
    return tuple(out[1:]) if any(batched) else tuple(out)


def _reuse(uf: _Groups, node: GraphNode, lab: Labels, axes: list[tuple[int, PermAxis]],
           module: str, why: str, *, channel_first: bool = False) -> Labels:
    """A layer called again: its input and output groups must be those of the first call."""
    w_in = next((g for g, ax in axes if ax.key == f"{module}.weight" and ax.axis == 1), None)
    w_out = next((g for g, ax in axes if ax.key == f"{module}.weight" and ax.axis == 0), None)
    src = lab[0] if channel_first else lab[-1]
    uf.union(src, w_in, f"{why}: the layer is applied to values of different groups")
    if channel_first:
        return (w_out, *([None] * (len(node.out_shape) - 1)))
    return (*lab[:-1], w_out)


def _flatten(uf: _Groups, node: GraphNode, lab: Labels, why: str) -> Labels:
    shape = node.in_shapes[0]
    rank = len(shape) + 1
    a = (node.attrs["start_dim"] + rank if node.attrs["start_dim"] < 0
         else node.attrs["start_dim"]) - 1
    b = (node.attrs["end_dim"] + rank if node.attrs["end_dim"] < 0 else node.attrs["end_dim"]) - 1
    merged = list(range(a, b + 1))
    big = [i for i in merged if shape[i] > 1]
    keep: int | None = None
    if len(big) == 1:
        keep = lab[big[0]]
    else:
        for i in merged:
            uf.pin(lab[i], f"{why}: flattens a permuted dimension with others")
    return (*lab[:a], keep, *lab[b + 1 :])


def _reshape(uf: _Groups, node: GraphNode, lab: Labels, why: str) -> Labels:
    """Keep groups when only size-1 dimensions are added or removed."""
    before = [(s, g) for s, g in zip(node.in_shapes[0], lab, strict=True) if s != 1]
    after = [s for s in node.out_shape if s != 1]
    if [s for s, _ in before] == after:
        it = iter(g for _, g in before)
        return tuple(next(it) if s != 1 else None for s in node.out_shape)
    for g in lab:
        uf.pin(g, f"{why}: reshapes a permuted dimension")
    return (None,) * len(node.out_shape)
