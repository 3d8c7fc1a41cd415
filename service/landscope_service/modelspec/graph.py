"""The ``graph`` architecture: named nodes from an allow-list of ops, checked without torch.

A graph is JSON, never code::

    {"type": "graph",
     "input": {"name": "x", "shape": [3, 32, 32], "dtype": "float"},
     "nodes": [
        {"name": "conv1", "op": "conv2d", "inputs": ["x"],
         "attrs": {"out_channels": 16, "kernel_size": 3, "padding": 1, "bias": false}},
        {"name": "bn1", "op": "batchnorm2d", "inputs": ["conv1"]},
        {"name": "relu", "op": "relu", "inputs": ["bn1"]},
        ...],
     "output": "fc"}

Shapes. ``input.shape`` is one sample's shape (any rank: ``[T]`` token ids, ``[T, d]``,
``[C, H, W]``); every value of the graph carries an implicit leading batch dimension,
which no op may move or mix. Attributes that name a dimension (``dim``, ``dims``,
``start_dim``, ``permute``'s ``dims``) count it as torch code does: dimension 0 is the
batch, so ``flatten`` with ``start_dim: 1`` keeps the batch. Values of ``parameter``
and ``buffer`` nodes have no batch dimension and broadcast like torch tensors.

Names. A node with parameters owns them under its name: a ``linear`` node
``layer1.0.fc`` has ``layer1.0.fc.weight`` and ``layer1.0.fc.bias``, exactly the
``state_dict`` keys of the user's module; ``parameter``/``buffer`` nodes are the key
itself. A node may instead give ``"module": "<path>"`` to use the parameters of another
node (a layer called twice); both must have the same op and attributes.

Everything here is checked at submit time without torch: the ops and their attributes,
that every input exists, no cycle, every node reaches the output, the shape of every
value, the names and shapes of every parameter and buffer (no name may collide with
another, or with a module path), and the limits on nodes, parameters and activation
sizes. Each error names the node: ``nodes[3] ('layer1.0.conv1', conv2d): ...``.

Inference is deterministic: ``dropout`` is the identity and batch norm uses its running
statistics (eval mode), so the loss is a function of the parameters alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACTIVATION_OPS",
    "GRAPH_LIMITS",
    "OPS",
    "PARAMETRIC_OPS",
    "GraphError",
    "GraphInfo",
    "GraphNode",
    "analyze_graph",
]

GRAPH_LIMITS: dict[str, int] = {
    "max_nodes": 10_000,
    "max_rank": 6,
    "max_dim": 16_777_216,
    "max_embeddings": 16_777_216,
    "max_total_activation_numel": 100_000_000,
}
"""Bounds of a graph, beside the shared ``max_params`` / ``max_activation_numel``."""

_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_REQ = object()


class GraphError(ValueError):
    """A graph that does not fit together; ``path`` is relative to the architecture."""

    def __init__(self, path: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.path: tuple[str | int, ...] = tuple(path)
        self.message = message


class _AttrError(ValueError):
    pass


class _OpError(ValueError):
    def __init__(self, message: str, attr: str | None = None) -> None:
        super().__init__(message)
        self.attr = attr


# ---------------------------------------------------------------------------- attributes
Validator = Callable[[Any], Any]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(lo: int | None = None, hi: int | None = None) -> Validator:
    def check(v: Any) -> int:
        if not _is_int(v):
            raise _AttrError(f"must be an integer, got {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise _AttrError(f"must be between {lo} and {hi}, got {v}")
        return int(v)

    return check


def _float(lo: float | None = None, hi: float | None = None) -> Validator:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise _AttrError(f"must be a finite number, got {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise _AttrError(f"must be between {lo} and {hi}, got {v}")
        return float(v)

    return check


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _AttrError(f"must be true or false, got {v!r}")
    return v


def _choice(*choices: str) -> Validator:
    def check(v: Any) -> str:
        if v not in choices:
            raise _AttrError(f"must be one of {list(choices)}, got {v!r}")
        return str(v)

    return check


def _tuple(n: int, lo: int, hi: int) -> Validator:
    """An int (repeated ``n`` times) or a list of ``n`` ints."""
    item = _int(lo, hi)

    def check(v: Any) -> list[int]:
        if _is_int(v):
            return [item(v)] * n
        if not isinstance(v, list) or len(v) != n:
            raise _AttrError(f"must be an integer or a list of {n} integers, got {v!r}")
        return [item(x) for x in v]

    return check


def _ints(lo: int, hi: int, *, min_len: int = 0, max_len: int = 16) -> Validator:
    item = _int(lo, hi)

    def check(v: Any) -> list[int]:
        if not isinstance(v, list) or not min_len <= len(v) <= max_len:
            raise _AttrError(f"must be a list of {min_len} to {max_len} integers, got {v!r}")
        return [item(x) for x in v]

    return check


def _optional(inner: Validator) -> Validator:
    def check(v: Any) -> Any:
        return None if v is None else inner(v)

    return check


def _opt_tuple(n: int, lo: int, hi: int) -> Validator:
    """An int, or a list of ``n`` ints or nulls (null keeps that size)."""
    item = _int(lo, hi)

    def check(v: Any) -> list[int | None]:
        if _is_int(v):
            return [item(v)] * n
        if not isinstance(v, list) or len(v) != n:
            raise _AttrError(f"must be an integer or a list of {n} integers or nulls, got {v!r}")
        return [None if x is None else item(x) for x in v]

    return check


def _index(v: Any) -> list[int | list[int | None]]:
    """``slice`` entries: an int (select, drops the dim) or ``[start, stop, step]``."""
    if not isinstance(v, list) or len(v) > GRAPH_LIMITS["max_rank"]:
        raise _AttrError(
            f"must be a list of at most {GRAPH_LIMITS['max_rank']} entries, got {v!r}"
        )
    out: list[int | list[int | None]] = []
    big = GRAPH_LIMITS["max_dim"]
    for entry in v:
        if _is_int(entry):
            out.append(_int(-big, big)(entry))
            continue
        if not isinstance(entry, list) or len(entry) != 3:
            raise _AttrError(
                f"each entry must be an integer or [start, stop, step] (null for the "
                f"default), got {entry!r}"
            )
        start, stop, step = entry
        start = None if start is None else _int(-big, big)(start)
        stop = None if stop is None else _int(-big, big)(stop)
        step = 1 if step is None else _int(1, big)(step)
        out.append([start, stop, step])
    return out


_DIM = _int(-GRAPH_LIMITS["max_rank"] - 1, GRAPH_LIMITS["max_rank"])
_SIZE = _int(1, GRAPH_LIMITS["max_dim"])
_EPS = _float(1e-12, 1.0)
_K = 64  # largest kernel size, stride, padding, dilation


# ---------------------------------------------------------------------------- values
@dataclass(frozen=True)
class _Val:
    """A value of the graph: per-sample shape when ``batched``, else the full shape."""

    shape: tuple[int, ...]
    batched: bool = True
    tokens: bool = False

    def full(self) -> tuple[int | None, ...]:
        return (None, *self.shape) if self.batched else self.shape


def _fmt(val: _Val) -> str:
    if val.batched:
        return "(N, " + ", ".join(str(s) for s in val.shape) + ")" if val.shape else "(N,)"
    return str(tuple(val.shape))


def _dim(val: _Val, d: int, what: str = "dim") -> int:
    """Normalise a full-tensor dim of ``val`` to an index into ``val.shape``."""
    rank = len(val.shape) + (1 if val.batched else 0)
    nd = d + rank if d < 0 else d
    if not 0 <= nd < rank:
        raise _OpError(f"{what} {d} is out of range for a value of shape {_fmt(val)}", what)
    if val.batched:
        if nd == 0:
            raise _OpError(
                f"{what} {d} is the batch dimension, which no op may change; the value has "
                f"shape {_fmt(val)}",
                what,
            )
        return nd - 1
    return nd


def _broadcast(vals: Sequence[_Val]) -> _Val:
    fulls = [v.full() for v in vals]
    rank = max(len(f) for f in fulls)
    out: list[int | None] = []
    for i in range(rank):
        size: int | None = 1
        for f in fulls:
            j = i - (rank - len(f))
            if j < 0:
                continue
            s = f[j]
            if s == size or s == 1:
                continue
            if size == 1:
                size = s
                continue
            raise _OpError(
                "shapes " + " and ".join(_fmt(v) for v in vals) + " do not broadcast "
                "(N is the batch dimension)"
            )
        out.append(size)
    batched = any(v.batched for v in vals)
    if batched:
        if out[0] is not None or any(s is None for s in out[1:]):
            raise _OpError(
                "broadcasting " + " and ".join(_fmt(v) for v in vals) + " would move the "
                "batch dimension N; give the parameter fewer leading dimensions"
            )
        return _Val(tuple(int(s) for s in out[1:] if s is not None), True)
    return _Val(tuple(int(s) for s in out if s is not None), False)


def _one(vals: Sequence[_Val], op: str, *, batched: bool = True, tokens: bool = False) -> _Val:
    if len(vals) != 1:
        raise _OpError(f"{op} takes exactly one input, got {len(vals)}", "inputs")
    v = vals[0]
    if batched and not v.batched:
        raise _OpError(
            f"{op} needs a batched value (the network's data flowing through it), got a "
            f"parameter of shape {_fmt(v)}",
            "inputs",
        )
    if v.tokens and not tokens:
        raise _OpError(
            f"{op} needs floating-point values, but its input holds int64 token ids; feed "
            f"them to an embedding first",
            "inputs",
        )
    return v


def _need_rank(v: _Val, ranks: Sequence[int], op: str, what: str) -> None:
    if len(v.shape) not in ranks:
        raise _OpError(f"{op} needs {what}, got shape {_fmt(v)}", "inputs")


def _pool_len(size: int, k: int, s: int, p: int, d: int, ceil: bool, where: str) -> int:
    span = d * (k - 1) + 1
    if size + 2 * p < span:
        raise _OpError(
            f"the kernel spans {span} (kernel {k}, dilation {d}) but the padded {where} has "
            f"only {size + 2 * p}",
            "kernel_size",
        )
    num = size + 2 * p - span
    out = (-(-num // s) if ceil else num // s) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


# ---------------------------------------------------------------------------- op table
@dataclass(frozen=True)
class _Shape:
    out: _Val
    params: dict[str, tuple[int, ...]] = field(default_factory=dict)
    buffers: dict[str, tuple[int, ...]] = field(default_factory=dict)
    inner_numel: int = 0  # largest temporary per sample (attention scores)


ShapeFn = Callable[[dict[str, Any], list[_Val]], _Shape]


@dataclass(frozen=True)
class _Op:
    attrs: dict[str, tuple[Validator, Any]]
    shape: ShapeFn
    doc: str
    inputs: tuple[int, int] = (1, 1)


def _elementwise(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    v = _one(vals, "this activation", batched=False)
    return _Shape(v)


def _identity(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    return _Shape(_one(vals, "identity", batched=False, tokens=True))


def _linear(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    v = _one(vals, "linear")
    if not v.shape:
        raise _OpError("linear acts on the last dimension; its input has none but the batch")
    out = attrs["out_features"]
    params = {"weight": (out, v.shape[-1])}
    if attrs["bias"]:
        params["bias"] = (out,)
    return _Shape(_Val((*v.shape[:-1], out)), params)


def _conv(nd: int) -> ShapeFn:
    def shape(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
        op = f"conv{nd}d"
        v = _one(vals, op)
        _need_rank(v, [nd + 1], op, f"a (channels, {'length' if nd == 1 else 'height, width'})"
                   " input per sample")
        c, spatial = v.shape[0], v.shape[1:]
        groups, out_c = attrs["groups"], attrs["out_channels"]
        if c % groups or out_c % groups:
            raise _OpError(
                f"groups={groups} must divide both the input channels ({c}) and "
                f"out_channels ({out_c})",
                "groups",
            )
        sizes = [
            _pool_len(spatial[i], attrs["kernel_size"][i], attrs["stride"][i],
                      attrs["padding"][i], attrs["dilation"][i], False, "input")
            for i in range(nd)
        ]
        params = {"weight": (out_c, c // groups, *attrs["kernel_size"])}
        if attrs["bias"]:
            params["bias"] = (out_c,)
        return _Shape(_Val((out_c, *sizes)), params)

    return shape


def _batchnorm(nd: int) -> ShapeFn:
    def shape(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
        op = f"batchnorm{nd}d"
        v = _one(vals, op)
        if nd == 1:
            _need_rank(v, [1, 2], op, "a (features,) or (channels, length) input per sample")
        else:
            _need_rank(v, [3], op, "a (channels, height, width) input per sample")
        if not attrs["track_running_stats"]:
            raise _OpError(
                "track_running_stats=false normalises with the batch's own statistics, so "
                "the loss would depend on how samples are batched; use running statistics",
                "track_running_stats",
            )
        c = v.shape[0]
        params = {"weight": (c,), "bias": (c,)} if attrs["affine"] else {}
        buffers = {"running_mean": (c,), "running_var": (c,), "num_batches_tracked": ()}
        return _Shape(v, params, buffers)

    return shape


def _layernorm(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    v = _one(vals, "layernorm")
    ns = tuple(attrs["normalized_shape"])
    if not ns or tuple(v.shape[len(v.shape) - len(ns):]) != ns or len(ns) > len(v.shape):
        raise _OpError(
            f"normalized_shape {list(ns)} must equal the trailing dimensions of the input "
            f"{_fmt(v)} (it may not include the batch)",
            "normalized_shape",
        )
    params: dict[str, tuple[int, ...]] = {}
    if attrs["elementwise_affine"]:
        params["weight"] = ns
        if attrs["bias"]:
            params["bias"] = ns
    return _Shape(v, params)


def _groupnorm(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    v = _one(vals, "groupnorm")
    if not v.shape:
        raise _OpError("groupnorm needs a (channels, ...) input per sample")
    c, g = v.shape[0], attrs["num_groups"]
    if c % g:
        raise _OpError(f"num_groups={g} must divide the channels ({c})", "num_groups")
    params = {"weight": (c,), "bias": (c,)} if attrs["affine"] else {}
    return _Shape(v, params)


def _embedding(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    v = _one(vals, "embedding", tokens=True)
    if not v.tokens:
        raise _OpError(
            "embedding needs int64 token ids; declare the graph input with "
            '"dtype": "int64"',
            "inputs",
        )
    pad = attrs["padding_idx"]
    n, d = attrs["num_embeddings"], attrs["embedding_dim"]
    if pad is not None and not -n <= pad < n:
        raise _OpError(f"padding_idx {pad} is outside [-{n}, {n})", "padding_idx")
    return _Shape(_Val((*v.shape, d)), {"weight": (n, d)})


def _mha(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    if len(vals) not in (1, 3):
        raise _OpError(
            f"multihead_attention takes 1 input (self-attention) or 3 (query, key, value), "
            f"got {len(vals)}",
            "inputs",
        )
    for v in vals:
        _one([v], "multihead_attention")
    q, k, val = (vals * 3)[:3] if len(vals) == 1 else vals
    for name, v in (("query", q), ("key", k), ("value", val)):
        _need_rank(v, [2], "multihead_attention", f"(sequence, embed_dim) {name} per sample")
    e = q.shape[1]
    if k.shape[1] != e or val.shape[1] != e:
        raise _OpError(
            f"key and value need embed_dim {e} like the query (kdim/vdim differing from "
            f"embed_dim are not supported), got {_fmt(k)} and {_fmt(val)}",
            "inputs",
        )
    if k.shape[0] != val.shape[0]:
        raise _OpError(f"key {_fmt(k)} and value {_fmt(val)} need the same length", "inputs")
    heads = attrs["num_heads"]
    if e % heads:
        raise _OpError(f"num_heads={heads} must divide embed_dim {e}", "num_heads")
    if attrs["causal"] and q.shape[0] != k.shape[0]:
        raise _OpError("a causal mask needs query and key of the same length", "causal")
    params: dict[str, tuple[int, ...]] = {"in_proj_weight": (3 * e, e)}
    if attrs["bias"]:
        params["in_proj_bias"] = (3 * e,)
    params["out_proj.weight"] = (e, e)
    if attrs["bias"]:
        params["out_proj.bias"] = (e,)
    return _Shape(_Val(q.shape), params, inner_numel=heads * q.shape[0] * k.shape[0])


def _sdpa(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    if len(vals) != 3:
        raise _OpError(f"scaled_dot_product_attention takes (query, key, value), got "
                       f"{len(vals)} inputs", "inputs")
    q, k, v = (_one([x], "scaled_dot_product_attention") for x in vals)
    if min(len(q.shape), len(k.shape), len(v.shape)) < 2 or not (
        len(q.shape) == len(k.shape) == len(v.shape)
    ):
        raise _OpError(
            f"query, key and value need the same rank >= 2 per sample (..., length, dim), "
            f"got {_fmt(q)}, {_fmt(k)}, {_fmt(v)}",
            "inputs",
        )
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise _OpError(f"leading dimensions differ: {_fmt(q)}, {_fmt(k)}, {_fmt(v)}", "inputs")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise _OpError(
            f"query and key need the same last dimension and key and value the same "
            f"length: {_fmt(q)}, {_fmt(k)}, {_fmt(v)}",
            "inputs",
        )
    if attrs["causal"] and q.shape[-2] != k.shape[-2]:
        raise _OpError("a causal mask needs query and key of the same length", "causal")
    inner = math.prod(q.shape[:-1]) * k.shape[-2]
    return _Shape(_Val((*q.shape[:-1], v.shape[-1])), inner_numel=inner)


def _softmax(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    v = _one(vals, "softmax", batched=False)
    _dim(v, attrs["dim"])
    return _Shape(v)


def _pool(nd: int, kind: str) -> ShapeFn:
    def shape(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
        op = f"{kind}_pool{nd}d"
        v = _one(vals, op)
        _need_rank(v, [nd + 1], op, f"a (channels, {'length' if nd == 1 else 'height, width'})"
                   " input per sample")
        k = attrs["kernel_size"]
        s = attrs["stride"] if attrs["stride"] is not None else k
        p = attrs["padding"]
        d = attrs.get("dilation", [1] * nd)
        for i in range(nd):
            if 2 * p[i] > k[i]:
                raise _OpError(
                    f"padding {p[i]} must be at most half the kernel size {k[i]}", "padding"
                )
        sizes = [
            _pool_len(v.shape[1 + i], k[i], s[i], p[i], d[i], attrs["ceil_mode"], "input")
            for i in range(nd)
        ]
        return _Shape(_Val((v.shape[0], *sizes)))

    return shape


def _adaptive(nd: int) -> ShapeFn:
    def shape(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
        op = f"adaptive_avg_pool{nd}d"
        v = _one(vals, op)
        _need_rank(v, [nd + 1], op, f"a (channels, {'length' if nd == 1 else 'height, width'})"
                   " input per sample")
        sizes = [
            v.shape[1 + i] if attrs["output_size"][i] is None else attrs["output_size"][i]
            for i in range(nd)
        ]
        return _Shape(_Val((v.shape[0], *sizes)))

    return shape


def _flatten(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    v = _one(vals, "flatten", tokens=True)
    if not v.shape:
        return _Shape(v)
    a = _dim(v, attrs["start_dim"], "start_dim")
    b = _dim(v, attrs["end_dim"], "end_dim")
    if a > b:
        raise _OpError(f"start_dim {attrs['start_dim']} comes after end_dim {attrs['end_dim']}",
                       "start_dim")
    shape = (*v.shape[:a], math.prod(v.shape[a : b + 1]), *v.shape[b + 1 :])
    return _Shape(_Val(shape, tokens=v.tokens))


def _reshape(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    v = _one(vals, "reshape", tokens=True)
    target = list(attrs["shape"])
    numel = math.prod(v.shape)
    if target.count(-1) > 1 or any(s == 0 or s < -1 for s in target):
        raise _OpError(f"shape {target} may hold positive sizes and at most one -1", "shape")
    known = math.prod(s for s in target if s != -1)
    if -1 in target:
        if numel % known:
            raise _OpError(f"cannot reshape {_fmt(v)} to (N, {target}): {numel} values per "
                           f"sample do not divide by {known}", "shape")
        target[target.index(-1)] = numel // known
    elif known != numel:
        raise _OpError(f"cannot reshape {_fmt(v)} ({numel} values per sample) to per-sample "
                       f"shape {target} ({known} values)", "shape")
    return _Shape(_Val(tuple(target), tokens=v.tokens))


def _permute(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    v = _one(vals, "permute", tokens=True)
    dims = attrs["dims"]
    rank = len(v.shape) + 1
    norm = [d + rank if d < 0 else d for d in dims]
    if sorted(norm) != list(range(rank)):
        raise _OpError(f"dims {dims} must be a permutation of 0..{rank - 1} for a value of "
                       f"shape {_fmt(v)}", "dims")
    if norm[0] != 0:
        raise _OpError(f"dims {dims} moves the batch dimension; dims[0] must be 0", "dims")
    return _Shape(_Val(tuple(v.shape[d - 1] for d in norm[1:]), tokens=v.tokens))


def _transpose(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    v = _one(vals, "transpose", tokens=True)
    a = _dim(v, attrs["dim0"], "dim0")
    b = _dim(v, attrs["dim1"], "dim1")
    shape = list(v.shape)
    shape[a], shape[b] = shape[b], shape[a]
    return _Shape(_Val(tuple(shape), tokens=v.tokens))


def _slice(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    v = _one(vals, "slice", tokens=True)
    index = attrs["index"]
    if len(index) > len(v.shape):
        raise _OpError(f"index has {len(index)} entries but the value {_fmt(v)} has only "
                       f"{len(v.shape)} dimensions after the batch", "index")
    out: list[int] = []
    for i, size in enumerate(v.shape):
        if i >= len(index):
            out.append(size)
            continue
        entry = index[i]
        if isinstance(entry, int):
            if not -size <= entry < size:
                raise _OpError(f"index {entry} is out of range for dimension {i + 1} of size "
                               f"{size}", "index")
            continue
        start, stop, step = entry
        n = len(range(*slice(start, stop, step).indices(size)))
        if n < 1:
            raise _OpError(f"slice {entry} of dimension {i + 1} (size {size}) is empty", "index")
        out.append(n)
    return _Shape(_Val(tuple(out), tokens=v.tokens))


def _pad(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    v = _one(vals, "pad")
    pad = attrs["pad"]
    if len(pad) % 2 or len(pad) > 2 * len(v.shape):
        raise _OpError(f"pad {pad} needs an even length of at most 2 x {len(v.shape)} (the "
                       f"dimensions after the batch of {_fmt(v)})", "pad")
    shape = list(v.shape)
    for i in range(len(pad) // 2):
        d = len(shape) - 1 - i
        shape[d] += pad[2 * i] + pad[2 * i + 1]
        if shape[d] < 1:
            raise _OpError(f"pad {pad} leaves dimension {d + 1} empty", "pad")
    return _Shape(_Val(tuple(shape)))


def _arith(op: str) -> ShapeFn:
    def shape(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
        for v in vals:
            if v.tokens:
                raise _OpError(f"{op} needs floating-point values, not token ids", "inputs")
        if len(vals) == 1:
            if attrs["scalar"] is None:
                raise _OpError(f"{op} with one input needs attrs.scalar", "scalar")
            return _Shape(vals[0])
        if attrs["scalar"] is not None:
            raise _OpError(f"{op} takes either two inputs or one input and a scalar", "scalar")
        return _Shape(_broadcast(vals))

    return shape


def _cat(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
    if not all(v.batched for v in vals) or len({len(v.shape) for v in vals}) != 1:
        raise _OpError("cat needs batched inputs of the same rank, got "
                       + ", ".join(_fmt(v) for v in vals), "inputs")
    d = _dim(vals[0], attrs["dim"])
    for v in vals:
        if v.shape[:d] + v.shape[d + 1 :] != vals[0].shape[:d] + vals[0].shape[d + 1 :]:
            raise _OpError("cat inputs must agree except along dim "
                           f"{attrs['dim']}: " + ", ".join(_fmt(v) for v in vals), "inputs")
    size = sum(v.shape[d] for v in vals)
    tokens = all(v.tokens for v in vals)
    if any(v.tokens for v in vals) and not tokens:
        raise _OpError("cat cannot mix token ids and floating-point values", "inputs")
    return _Shape(_Val((*vals[0].shape[:d], size, *vals[0].shape[d + 1 :]), tokens=tokens))


def _reduce(op: str) -> ShapeFn:
    def shape(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
        v = _one(vals, op)
        dims = sorted({_dim(v, d, "dims") for d in attrs["dims"]})
        if not dims:
            raise _OpError(f"{op} needs at least one dim (never the batch)", "dims")
        if attrs["keepdim"]:
            out = tuple(1 if i in dims else s for i, s in enumerate(v.shape))
        else:
            out = tuple(s for i, s in enumerate(v.shape) if i not in dims)
        return _Shape(_Val(out))

    return shape


def _leaf(kind: str) -> ShapeFn:
    def shape(attrs: dict[str, Any], vals: list[_Val]) -> _Shape:
        if vals:
            raise _OpError(f"{kind} takes no inputs", "inputs")
        s = tuple(attrs["shape"])
        return _Shape(_Val(s, batched=False), {"": s} if kind == "parameter" else {},
                      {"": s} if kind == "buffer" else {})

    return shape


_ACT_EXTRA: dict[str, dict[str, tuple[Validator, Any]]] = {
    "leaky_relu": {"negative_slope": (_float(0.0, 1.0), 0.01)},
    "softplus": {"beta": (_float(1e-6, 1e6), 1.0), "threshold": (_float(0.0, 1e6), 20.0)},
    "gelu": {"approximate": (_choice("none", "tanh"), "none")},
    "elu": {"alpha": (_float(0.0, 1e6), 1.0)},
    "celu": {"alpha": (_float(1e-6, 1e6), 1.0)},
    "hardtanh": {"min_val": (_float(-1e6, 1e6), -1.0), "max_val": (_float(-1e6, 1e6), 1.0)},
}
ACTIVATION_OPS: tuple[str, ...] = (
    "identity", "relu", "leaky_relu", "quadratic", "tanh", "sigmoid", "softplus", "gelu",
    "silu", "elu", "selu", "celu", "relu6", "hardtanh", "mish", "hardswish", "hardsigmoid",
    "softsign", "logsigmoid", "tanhshrink",
)  # fmt: skip
"""Elementwise activations (``identity`` included); they commute with permutations."""

_POOL_ATTRS = {
    "stride": (_optional(_tuple(2, 1, _K)), None),
    "padding": (_tuple(2, 0, _K), [0, 0]),
    "ceil_mode": (_bool, False),
}


def _pool_attrs(nd: int, kind: str) -> dict[str, tuple[Validator, Any]]:
    out: dict[str, tuple[Validator, Any]] = {
        "kernel_size": (_tuple(nd, 1, _K), _REQ),
        "stride": (_optional(_tuple(nd, 1, _K)), None),
        "padding": (_tuple(nd, 0, _K), [0] * nd),
        "ceil_mode": (_bool, False),
    }
    if kind == "max":
        out["dilation"] = (_tuple(nd, 1, _K), [1] * nd)
    else:
        out["count_include_pad"] = (_bool, True)
    return out


def _conv_attrs(nd: int) -> dict[str, tuple[Validator, Any]]:
    return {
        "out_channels": (_SIZE, _REQ),
        "kernel_size": (_tuple(nd, 1, _K), _REQ),
        "stride": (_tuple(nd, 1, _K), [1] * nd),
        "padding": (_tuple(nd, 0, _K), [0] * nd),
        "dilation": (_tuple(nd, 1, _K), [1] * nd),
        "groups": (_int(1, GRAPH_LIMITS["max_dim"]), 1),
        "bias": (_bool, True),
    }


_BN = {"eps": (_EPS, 1e-5), "affine": (_bool, True), "track_running_stats": (_bool, True)}
_ARITH = {"scalar": (_optional(_float(-1e12, 1e12)), None)}
_SHAPE_ATTR = (_ints(-1, GRAPH_LIMITS["max_dim"], min_len=0, max_len=GRAPH_LIMITS["max_rank"]),
               _REQ)

OPS: dict[str, _Op] = {
    **{
        a: _Op(_ACT_EXTRA.get(a, {}), _identity if a == "identity" else _elementwise,
               f"elementwise {a}")
        for a in ACTIVATION_OPS
    },
    "dropout": _Op({"p": (_float(0.0, 1.0), 0.5)}, _identity,
                   "identity: the loss is evaluated deterministically (eval mode)"),
    "linear": _Op({"out_features": (_SIZE, _REQ), "bias": (_bool, True)}, _linear,
                  "nn.Linear on the last dimension"),
    "conv1d": _Op(_conv_attrs(1), _conv(1), "nn.Conv1d on (C, L)"),
    "conv2d": _Op(_conv_attrs(2), _conv(2), "nn.Conv2d on (C, H, W)"),
    "batchnorm1d": _Op(_BN, _batchnorm(1), "nn.BatchNorm1d (running statistics)"),
    "batchnorm2d": _Op(_BN, _batchnorm(2), "nn.BatchNorm2d (running statistics)"),
    "layernorm": _Op(
        {"normalized_shape": (_ints(1, GRAPH_LIMITS["max_dim"], min_len=1,
                                    max_len=GRAPH_LIMITS["max_rank"]), _REQ),
         "eps": (_EPS, 1e-5), "elementwise_affine": (_bool, True), "bias": (_bool, True)},
        _layernorm, "nn.LayerNorm over the trailing normalized_shape"),
    "groupnorm": _Op({"num_groups": (_SIZE, _REQ), "eps": (_EPS, 1e-5), "affine": (_bool, True)},
                     _groupnorm, "nn.GroupNorm on (C, ...)"),
    "embedding": _Op(
        {"num_embeddings": (_int(1, GRAPH_LIMITS["max_embeddings"]), _REQ),
         "embedding_dim": (_SIZE, _REQ),
         "padding_idx": (_optional(_int(-GRAPH_LIMITS["max_embeddings"],
                                        GRAPH_LIMITS["max_embeddings"])), None)},
        _embedding, "nn.Embedding of int64 token ids"),
    "multihead_attention": _Op(
        {"num_heads": (_SIZE, _REQ), "bias": (_bool, True), "causal": (_bool, False)},
        _mha, "nn.MultiheadAttention(batch_first=True), output only", (1, 3)),
    "scaled_dot_product_attention": _Op(
        {"causal": (_bool, False), "scale": (_optional(_float(1e-12, 1e12)), None)},
        _sdpa, "F.scaled_dot_product_attention(query, key, value)", (3, 3)),
    "softmax": _Op({"dim": (_DIM, _REQ)}, _softmax, "softmax along dim"),
    "log_softmax": _Op({"dim": (_DIM, _REQ)}, _softmax, "log_softmax along dim"),
    "max_pool1d": _Op(_pool_attrs(1, "max"), _pool(1, "max"), "max pooling on (C, L)"),
    "max_pool2d": _Op(_pool_attrs(2, "max"), _pool(2, "max"), "max pooling on (C, H, W)"),
    "avg_pool1d": _Op(_pool_attrs(1, "avg"), _pool(1, "avg"), "average pooling on (C, L)"),
    "avg_pool2d": _Op(_pool_attrs(2, "avg"), _pool(2, "avg"), "average pooling on (C, H, W)"),
    "adaptive_avg_pool1d": _Op({"output_size": (_opt_tuple(1, 1, GRAPH_LIMITS["max_dim"]),
                                                _REQ)}, _adaptive(1), "adaptive average pool"),
    "adaptive_avg_pool2d": _Op({"output_size": (_opt_tuple(2, 1, GRAPH_LIMITS["max_dim"]),
                                                _REQ)}, _adaptive(2), "adaptive average pool"),
    "flatten": _Op({"start_dim": (_DIM, 1), "end_dim": (_DIM, -1)}, _flatten,
                   "torch.flatten (start_dim >= 1)"),
    "reshape": _Op({"shape": _SHAPE_ATTR}, _reshape, "reshape each sample (one -1 allowed)"),
    "permute": _Op({"dims": (_ints(-GRAPH_LIMITS["max_rank"] - 1, GRAPH_LIMITS["max_rank"],
                                   min_len=1, max_len=GRAPH_LIMITS["max_rank"] + 1), _REQ)},
                   _permute, "permute dimensions (dims[0] must be 0)"),
    "transpose": _Op({"dim0": (_DIM, _REQ), "dim1": (_DIM, _REQ)}, _transpose,
                     "swap two non-batch dimensions"),
    "slice": _Op({"index": (_index, _REQ)}, _slice,
                 "index each sample: ints select, [start, stop, step] slice"),
    "pad": _Op({"pad": (_ints(-_K, _K, min_len=2, max_len=2 * GRAPH_LIMITS["max_rank"]), _REQ),
                "value": (_float(-1e12, 1e12), 0.0)}, _pad, "F.pad, constant mode"),
    "add": _Op(_ARITH, _arith("add"), "a + b (broadcasting) or a + scalar", (1, 2)),
    "sub": _Op(_ARITH, _arith("sub"), "a - b or a - scalar", (1, 2)),
    "mul": _Op(_ARITH, _arith("mul"), "a * b or a * scalar", (1, 2)),
    "div": _Op(_ARITH, _arith("div"), "a / b or a / scalar", (1, 2)),
    "cat": _Op({"dim": (_DIM, _REQ)}, _cat, "concatenate along a non-batch dim",
               (1, 1024)),
    "mean": _Op({"dims": (_ints(-GRAPH_LIMITS["max_rank"] - 1, GRAPH_LIMITS["max_rank"],
                                min_len=1, max_len=GRAPH_LIMITS["max_rank"]), _REQ),
                 "keepdim": (_bool, False)}, _reduce("mean"), "mean over non-batch dims"),
    "sum": _Op({"dims": (_ints(-GRAPH_LIMITS["max_rank"] - 1, GRAPH_LIMITS["max_rank"],
                               min_len=1, max_len=GRAPH_LIMITS["max_rank"]), _REQ),
                "keepdim": (_bool, False)}, _reduce("sum"), "sum over non-batch dims"),
    "parameter": _Op({"shape": (_ints(1, GRAPH_LIMITS["max_dim"], max_len=GRAPH_LIMITS[
        "max_rank"]), _REQ)}, _leaf("parameter"),
        "a free trainable tensor (nn.Parameter); its name is the state_dict key", (0, 0)),
    "buffer": _Op({"shape": (_ints(1, GRAPH_LIMITS["max_dim"], max_len=GRAPH_LIMITS[
        "max_rank"]), _REQ)}, _leaf("buffer"),
        "a fixed float tensor from the weights file (register_buffer)", (0, 0)),
}
"""Every op of the graph architecture: attributes (validator, default), shape rule, doc."""

PARAMETRIC_OPS = frozenset(
    {"linear", "conv1d", "conv2d", "batchnorm1d", "batchnorm2d", "layernorm", "groupnorm",
     "embedding", "multihead_attention", "parameter", "buffer"}
)
"""Ops that own parameters or buffers (named after the node, or its ``module``)."""


# ---------------------------------------------------------------------------- analysis
@dataclass(frozen=True)
class GraphNode:
    """One node after checking: attributes with defaults filled in.

    Attributes:
        name: the node name.
        op: the op.
        inputs: names of its inputs (nodes or the graph input).
        attrs: all attributes of the op, defaults included.
        module: where its parameters live (its own name unless ``module`` was given).
        in_shapes: per-sample shapes of the inputs (full shapes for parameters).
        out_shape: per-sample shape of the output.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any]
    module: str
    in_shapes: tuple[tuple[int, ...], ...]
    out_shape: tuple[int, ...]
    batched: bool


@dataclass(frozen=True)
class GraphInfo:
    """A checked graph.

    Attributes:
        input_name, input_shape, input_dtype: the graph input (``"float"``/``"int64"``).
        nodes: the nodes in execution (topological) order.
        output: the output node's name.
        output_shape: ``(r,)``.
        params, buffers: state_dict key -> shape, in the order ``build`` registers them.
        modules: module path -> op, for nodes that own parameters or buffers.
        max_token: the smallest ``num_embeddings`` fed by the input (token ids must be
            below it), or ``None``.
    """

    input_name: str
    input_shape: tuple[int, ...]
    input_dtype: str
    nodes: tuple[GraphNode, ...]
    output: str
    output_shape: tuple[int, ...]
    params: dict[str, tuple[int, ...]]
    buffers: dict[str, tuple[int, ...]]
    modules: dict[str, str]
    max_token: int | None


def _where(i: int, node: Mapping[str, Any]) -> str:
    return f"nodes[{i}] ({node.get('name')!r}, {node.get('op')})"


def _check_attrs(i: int, node: Mapping[str, Any]) -> dict[str, Any]:
    op = OPS[node["op"]]
    given = node.get("attrs") or {}
    if not isinstance(given, Mapping):
        raise GraphError(("nodes", i, "attrs"), f"{_where(i, node)}: attrs must be an object.")
    unknown = sorted(set(given) - set(op.attrs))
    if unknown:
        raise GraphError(
            ("nodes", i, "attrs", unknown[0]),
            f"{_where(i, node)}: unknown attribute {unknown[0]!r}; {node['op']} takes "
            f"{sorted(op.attrs) or 'no attributes'}.",
        )
    out: dict[str, Any] = {}
    for key, (check, default) in op.attrs.items():
        if key not in given:
            if default is _REQ:
                raise GraphError(
                    ("nodes", i, "attrs", key),
                    f"{_where(i, node)}: attribute {key!r} is required.",
                )
            out[key] = list(default) if isinstance(default, list) else default
            continue
        try:
            out[key] = check(given[key])
        except _AttrError as e:
            raise GraphError(("nodes", i, "attrs", key), f"{_where(i, node)}: {key} {e}.") from e
    return out


def _order(nodes: Sequence[Mapping[str, Any]], index: dict[str, int], input_name: str,
           output: str) -> list[int]:
    """Topological order (Kahn); raises on unknown inputs, cycles, dead nodes."""
    n = len(nodes)
    indeg = [0] * n
    users: list[list[int]] = [[] for _ in range(n)]
    for i, node in enumerate(nodes):
        for j, src in enumerate(node["inputs"]):
            if src == input_name:
                continue
            if src not in index:
                raise GraphError(
                    ("nodes", i, "inputs", j),
                    f"{_where(i, node)}: input {src!r} is neither a node nor the graph input "
                    f"{input_name!r}.",
                )
            indeg[i] += 1
            users[index[src]].append(i)
    ready = [i for i in range(n) if indeg[i] == 0]
    order: list[int] = []
    while ready:
        i = ready.pop()
        order.append(i)
        for u in users[i]:
            indeg[u] -= 1
            if indeg[u] == 0:
                ready.append(u)
    if len(order) < n:
        stuck = [i for i in range(n) if indeg[i] > 0]
        # walk back along inputs inside the stuck set until a node repeats: that is a cycle
        seen: dict[int, int] = {}
        cur = stuck[0]
        trail: list[int] = []
        while cur not in seen:
            seen[cur] = len(trail)
            trail.append(cur)
            cur = next(index[s] for s in nodes[cur]["inputs"]
                       if s in index and indeg[index[s]] > 0)
        cycle = [nodes[k]["name"] for k in trail[seen[cur]:]]
        raise GraphError(
            ("nodes", cur),
            f"{_where(cur, nodes[cur])}: the graph has a cycle "
            f"{' <- '.join(repr(c) for c in [*cycle, cycle[0]])}; a graph must be acyclic.",
        )
    # every node must reach the output
    live = {index[output]}
    stack = [index[output]]
    while stack:
        i = stack.pop()
        for src in nodes[i]["inputs"]:
            k = index.get(src)
            if k is not None and k not in live:
                live.add(k)
                stack.append(k)
    for i in range(n):
        if i not in live:
            raise GraphError(
                ("nodes", i),
                f"{_where(i, nodes[i])}: this node does not contribute to the output "
                f"{output!r}; remove it.",
            )
    return _stable_topo(nodes, index, input_name)


def _stable_topo(nodes: Sequence[Mapping[str, Any]], index: dict[str, int],
                 input_name: str) -> list[int]:
    """Topological order that keeps the given order where it already is one."""
    import heapq

    n = len(nodes)
    indeg = [0] * n
    users: list[list[int]] = [[] for _ in range(n)]
    for i, node in enumerate(nodes):
        for src in node["inputs"]:
            if src != input_name:
                indeg[i] += 1
                users[index[src]].append(i)
    heap = [i for i in range(n) if indeg[i] == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        i = heapq.heappop(heap)
        order.append(i)
        for u in users[i]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(heap, u)
    return order


def analyze_graph(
    arch: Mapping[str, Any],
    *,
    max_params: int,
    max_activation_numel: int,
) -> GraphInfo:
    """Check a graph architecture and infer every shape and parameter, without torch.

    Args:
        arch: ``{"type": "graph", "input": {...}, "nodes": [...], "output": ...}`` as
            loaded by the schema (types checked; attributes are checked here).
        max_params: the largest parameter count allowed.
        max_activation_numel: the largest value (per sample) any node may produce.

    Returns:
        The :class:`GraphInfo`.

    Raises:
        GraphError: the first problem, ``path`` relative to the architecture and the
            message naming the node.
    """
    inp = arch["input"]
    input_name = str(inp["name"])
    input_shape = tuple(int(s) for s in inp["shape"])
    input_dtype = str(inp.get("dtype", "float"))
    nodes = list(arch["nodes"])
    output = str(arch["output"])
    if len(nodes) > GRAPH_LIMITS["max_nodes"]:
        raise GraphError(("nodes",), f"At most {GRAPH_LIMITS['max_nodes']} nodes, got "
                                     f"{len(nodes)}.")
    if not _NAME.match(input_name):
        raise GraphError(("input", "name"), f"Input name {input_name!r} must be dot-separated "
                                            "words of letters, digits and underscores.")
    index: dict[str, int] = {}
    for i, node in enumerate(nodes):
        name = node["name"]
        if not _NAME.match(name):
            raise GraphError(("nodes", i, "name"), f"{_where(i, node)}: a name must be "
                             "dot-separated words of letters, digits and underscores, like "
                             "'layer1.0.conv1'.")
        if name == input_name or name in index:
            other = "the graph input" if name == input_name else f"nodes[{index[name]}]"
            raise GraphError(("nodes", i, "name"),
                             f"{_where(i, node)}: name {name!r} is already used by {other}.")
        if node["op"] not in OPS:
            raise GraphError(("nodes", i, "op"), f"{_where(i, node)}: unknown op "
                             f"{node['op']!r}; supported ops: {sorted(OPS)}.")
        index[name] = i
    if output not in index:
        raise GraphError(("output",), f"Output {output!r} is not a node; name one of the nodes.")

    attrs = [_check_attrs(i, node) for i, node in enumerate(nodes)]
    for i, node in enumerate(nodes):
        lo, hi = OPS[node["op"]].inputs
        if not lo <= len(node["inputs"]) <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise GraphError(("nodes", i, "inputs"), f"{_where(i, node)}: takes {want} inputs, "
                             f"got {len(node['inputs'])}.")
        if "module" in node and node["op"] not in PARAMETRIC_OPS - {"parameter", "buffer"}:
            raise GraphError(("nodes", i, "module"), f"{_where(i, node)}: only a node with "
                             "parameters (linear, conv, norms, embedding, attention) may share "
                             "another's module.")
    order = _order(nodes, index, input_name, output)

    vals: dict[str, _Val] = {input_name: _Val(input_shape, True, input_dtype == "int64")}
    params: dict[str, tuple[int, ...]] = {}
    buffers: dict[str, tuple[int, ...]] = {}
    modules: dict[str, str] = {}
    module_attrs: dict[str, tuple[int, dict[str, Any], dict[str, tuple[int, ...]]]] = {}
    owner: dict[str, str] = {}
    checked: list[GraphNode] = []
    total_act = 0
    max_token: int | None = None
    for i in order:
        node = nodes[i]
        name, op = node["name"], node["op"]
        ins = [vals[s] for s in node["inputs"]]
        try:
            res = OPS[op].shape(attrs[i], ins)
        except _OpError as e:
            path: tuple[str | int, ...] = ("nodes", i) + (("attrs", e.attr) if e.attr and
                                                           e.attr != "inputs" else ("inputs",)
                                                           if e.attr == "inputs" else ())
            raise GraphError(path, f"{_where(i, node)}: {e}.") from e
        numel = math.prod(res.out.shape)
        if max(numel, res.inner_numel) > max_activation_numel:
            big = max(numel, res.inner_numel)
            raise GraphError(("nodes", i), f"{_where(i, node)}: produces {big}"
                             f" values per sample (output {_fmt(res.out)}); at most "
                             f"{max_activation_numel} are allowed.")
        total_act += numel + res.inner_numel
        if total_act > GRAPH_LIMITS["max_total_activation_numel"]:
            raise GraphError(("nodes", i), f"{_where(i, node)}: the activations up to here "
                             f"hold {total_act} values per sample; at most "
                             f"{GRAPH_LIMITS['max_total_activation_numel']} in all.")
        vals[name] = res.out
        module = str(node.get("module", name))
        if not _NAME.match(module):
            raise GraphError(("nodes", i, "module"), f"{_where(i, node)}: module {module!r} "
                             "must be dot-separated words.")
        if op in PARAMETRIC_OPS:
            if module in module_attrs:
                j, prev_attrs, prev_params = module_attrs[module]
                if nodes[j]["op"] != op or prev_attrs != attrs[i] or prev_params != res.params:
                    raise GraphError(("nodes", i, "module"), f"{_where(i, node)}: shares module "
                                     f"{module!r} with {_where(j, nodes[j])}, but its op, "
                                     "attributes or parameter shapes differ.")
            else:
                if module != name:
                    raise GraphError(("nodes", i, "module"), f"{_where(i, node)}: module "
                                     f"{module!r} is not a node with the same op that runs "
                                     "earlier; the first use of a layer owns its name.")
                module_attrs[module] = (i, attrs[i], res.params)
                modules[module] = op
                for leaf, shape in res.params.items():
                    key = f"{module}.{leaf}" if leaf else module
                    _claim(owner, key, i, node)
                    params[key] = shape
                for leaf, shape in res.buffers.items():
                    key = f"{module}.{leaf}" if leaf else module
                    _claim(owner, key, i, node)
                    buffers[key] = shape
        if op == "embedding":
            n = attrs[i]["num_embeddings"]
            max_token = n if max_token is None else min(max_token, n)
        checked.append(GraphNode(name, op, tuple(node["inputs"]), attrs[i], module,
                                 tuple(v.shape for v in ins), res.out.shape, res.out.batched))
    # names: no state key may equal a module path or a node name of another node
    for i, node in enumerate(nodes):
        key_owner = owner.get(node["name"])
        if key_owner is not None and key_owner != node["name"]:
            raise GraphError(("nodes", i, "name"), f"{_where(i, node)}: name {node['name']!r} "
                             f"collides with a parameter or buffer of node {key_owner!r}; "
                             "rename one of them.")
    for module, op in modules.items():
        parts = module.split(".")
        last = len(parts) if op not in ("parameter", "buffer") else len(parts) - 1
        for k in range(1, last + 1):
            prefix = ".".join(parts[:k])
            if prefix in owner:
                j = index[module]
                raise GraphError(("nodes", j, "name"), f"{_where(j, nodes[j])}: module path "
                                 f"{module!r} collides with the parameter or buffer "
                                 f"{prefix!r} of node {owner[prefix]!r}; rename one of them.")
    order_hint = arch.get("module_order")
    if order_hint is not None:
        if sorted(order_hint) != sorted(modules) or len(set(order_hint)) != len(order_hint):
            missing = sorted(set(modules) - set(order_hint))
            extra = sorted(set(order_hint) - set(modules))
            raise GraphError(("module_order",), "module_order must list every node with "
                             f"parameters or buffers once; missing {missing}, not such a node "
                             f"{extra}.")
        modules = {m: modules[m] for m in order_hint}
    out = vals[output]
    if not out.batched or len(out.shape) != 1 or out.tokens:
        raise GraphError(("output",), f"The output {output!r} must have shape (N, r) (one row "
                         f"of r outputs per sample), got {_fmt(out)}; end with flatten or mean "
                         "pooling and a linear layer.")
    total = sum(math.prod(s) for s in params.values())
    if total > max_params:
        raise GraphError(("nodes",), f"The graph has {total} parameters; at most {max_params} "
                         "are allowed.")
    if input_dtype == "int64" and max_token is None:
        raise GraphError(("input", "dtype"), "An int64 input must feed an embedding node.")
    return GraphInfo(input_name, input_shape, input_dtype, tuple(checked), output, out.shape,
                     _tree_order(params, modules, owner), _tree_order(buffers, modules, owner),
                     modules,
                     max_token)


def _tree_order(
    keys: dict[str, tuple[int, ...]], modules: dict[str, str], owner: dict[str, str]
) -> dict[str, tuple[int, ...]]:
    """``keys`` in ``nn.Module.named_parameters`` order of the built module.

    Modules are registered in ``modules`` order, containers created on the way; a
    module's own tensors come before its children's (``in_proj_weight`` before
    ``out_proj.weight``). ``owner`` maps each key to the node (module) that owns it.
    """
    children: dict[str, dict[str, int]] = {}  # container -> child -> position

    def ensure(path: str) -> None:
        parts = path.split(".") if path else []
        for k in range(len(parts)):
            pos = children.setdefault(".".join(parts[:k]), {})
            pos.setdefault(parts[k], len(pos))

    by_module: dict[str, list[str]] = {}
    for key in keys:
        by_module.setdefault(owner[key], []).append(key)
    own: dict[str, dict[str, int]] = {}  # container -> own tensor -> position
    for module, op in modules.items():
        ensure(module if op not in ("parameter", "buffer") else module.rpartition(".")[0])
        for key in by_module.get(module, []):
            container, _, leaf = key.rpartition(".")
            ensure(container)
            pos = own.setdefault(container, {})
            pos.setdefault(leaf, len(pos))

    def sort_key(key: str) -> list[int]:
        container, _, leaf = key.rpartition(".")
        parts = container.split(".") if container else []
        out: list[int] = []
        for k, part in enumerate(parts):
            out += [1, children[".".join(parts[:k])][part]]
        return [*out, 0, own[container][leaf]]

    return {key: keys[key] for key in sorted(keys, key=sort_key)}


def _claim(owner: dict[str, str], key: str, i: int, node: Mapping[str, Any]) -> None:
    if key in owner:
        raise GraphError(("nodes", i, "name"), f"{_where(i, node)}: its parameter or buffer "
                         f"{key!r} is also one of node {owner[key]!r}; rename one of them.")
    owner[key] = node["name"]
