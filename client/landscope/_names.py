"""Renaming a state_dict onto an architecture's parameter names (SDK side).

The rule is the service's (its 422 proposes the same mapping): a DataParallel
``module.`` prefix is dropped; otherwise tensors are grouped by leaf name (``weight``,
``bias``, ``running_mean``, ...) and, where the architecture's shapes are known, by
shape, and paired one to one in order (the state_dict's order against the
architecture's). When a group has different sizes on the two sides nothing is renamed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from landscope._torch import import_torch
from landscope.spec import ModelSpec

__all__ = ["expected_names", "map_state_dict"]

Expected = list[tuple[str, tuple[int, ...] | None, bool]]  # name, shape, required

_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _safetensors_names(raw: bytes) -> Expected:
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    return [
        (name, tuple(int(s) for s in entry["shape"]), name.rpartition(".")[2] not in _BN_BUFFERS)
        for name, entry in header.items()
        if name != "__metadata__"
    ]


def _mlp(arch: Mapping[str, Any]) -> Expected:
    widths = [int(arch["input_dim"]), *(int(h) for h in arch.get("hidden", [])),
              int(arch["output_dim"])]
    bias = bool(arch.get("bias", True))
    batchnorm = bool(arch.get("batchnorm", False))
    residual = bool(arch.get("residual", False))
    out: Expected = []
    index = 0
    for i in range(len(widths) - 1):
        last = i == len(widths) - 2
        wrap = residual and 0 < i and not last
        prefix = f"{index}.0" if wrap else str(index)
        out.append((f"{prefix}.weight", (widths[i + 1], widths[i]), True))
        if bias:
            out.append((f"{prefix}.bias", (widths[i + 1],), True))
        if last:
            break
        if batchnorm:
            bn = f"{index}.1" if wrap else str(index + 1)
            w = (widths[i + 1],)
            out += [(f"{bn}.weight", w, True), (f"{bn}.bias", w, True)]
            out += [(f"{bn}.running_mean", w, False), (f"{bn}.running_var", w, False),
                    (f"{bn}.num_batches_tracked", (), False)]
        index += 1 if wrap else (3 if batchnorm else 2)
    return out


def _sequential(layers: list[Mapping[str, Any]], prefix: str) -> Expected:
    out: Expected = []
    for i, layer in enumerate(layers):
        kind, name = layer.get("type"), f"{prefix}{i}"
        if kind in ("linear", "conv2d"):
            out.append((f"{name}.weight", None, True))
            if layer.get("bias", True):
                out.append((f"{name}.bias", None, True))
        elif kind in ("batchnorm", "layernorm"):
            out += [(f"{name}.weight", None, True), (f"{name}.bias", None, True)]
            if kind == "batchnorm":
                out += [(f"{name}.{b}", None, False) for b in _BN_BUFFERS]
        elif kind == "residual":
            out += _sequential(list(layer.get("layers", [])), f"{name}.")
    return out


def _graph(arch: Mapping[str, Any]) -> Expected:
    leaves: dict[str, list[str]] = {
        "linear": ["weight", "bias"], "conv1d": ["weight", "bias"], "conv2d": ["weight", "bias"],
        "embedding": ["weight"], "groupnorm": ["weight", "bias"],
    }
    nodes = {n["name"]: n for n in arch.get("nodes", []) if "module" not in n}
    order = list(arch.get("module_order") or nodes)
    out: Expected = []
    for name in order:
        node = nodes.get(name)
        if node is None:
            continue
        op, attrs = node.get("op"), node.get("attrs") or {}
        if op in ("parameter", "buffer"):
            out.append((name, tuple(attrs.get("shape", ())), op == "parameter"))
        elif op in leaves:
            for leaf in leaves[op]:
                if (leaf == "bias" and not attrs.get("bias", True)) or (
                    op == "groupnorm" and not attrs.get("affine", True)
                ):
                    continue
                out.append((f"{name}.{leaf}", None, True))
        elif op in ("batchnorm1d", "batchnorm2d"):
            if attrs.get("affine", True):
                out += [(f"{name}.weight", None, True), (f"{name}.bias", None, True)]
            out += [(f"{name}.{b}", None, False) for b in _BN_BUFFERS]
        elif op == "layernorm":
            if attrs.get("elementwise_affine", True):
                out.append((f"{name}.weight", None, True))
                if attrs.get("bias", True):
                    out.append((f"{name}.bias", None, True))
        elif op == "multihead_attention":
            bias = attrs.get("bias", True)
            out.append((f"{name}.in_proj_weight", None, True))
            if bias:
                out.append((f"{name}.in_proj_bias", None, True))
            out.append((f"{name}.out_proj.weight", None, True))
            if bias:
                out.append((f"{name}.out_proj.bias", None, True))
    return out


def expected_names(spec: Mapping[str, Any] | ModelSpec) -> Expected:
    """The architecture's tensor names in state_dict order, with shapes where known.

    Args:
        spec: a :class:`~landscope.ModelSpec`, a ``model`` object or an architecture.

    Raises:
        ValueError: not an architecture this function knows.
    """
    if isinstance(spec, ModelSpec):
        return _safetensors_names(spec.weights)
    arch = spec.get("architecture", spec)
    kind = arch.get("type")
    if kind == "mlp":
        return _mlp(arch)
    if kind == "sequential":
        return _sequential(list(arch.get("layers", [])), "")
    if kind == "graph":
        return _graph(arch)
    raise ValueError(f"Expected an mlp, sequential or graph architecture, got type {kind!r}.")


def map_state_dict(state_dict: Mapping[str, Any] | Any,
                   spec: Mapping[str, Any] | ModelSpec) -> dict[str, Any]:
    """``state_dict`` renamed onto the names of ``spec`` (see the module docstring).

    Args:
        state_dict: name -> tensor, or a ``torch.nn.Module``.
        spec: the architecture the weights are for.

    Returns:
        The renamed state dict (tensors not copied).

    Raises:
        ValueError: a checkpoint dict, or names that do not pair up; the message says
            which group differs.
    """
    torch = import_torch()
    if isinstance(state_dict, torch.nn.Module):
        state_dict = state_dict.state_dict()
    nested = [k for k, v in state_dict.items() if isinstance(v, Mapping)]
    if nested:
        raise ValueError(
            f"This is a checkpoint, not a state_dict: {nested[0]!r} holds a dict. Pass "
            f"checkpoint[{nested[0]!r}] (the model's state_dict) instead."
        )
    expected = expected_names(spec)
    names = {n for n, _, _ in expected}
    required = {n for n, _, req in expected if req}
    keys = list(state_dict)
    if required <= set(keys) and set(keys) <= names:
        return dict(state_dict)
    if keys and all(k.startswith("module.") for k in keys):
        stripped = {k.removeprefix("module."): v for k, v in state_dict.items()}
        if required <= set(stripped) and set(stripped) <= names:
            return stripped
        state_dict, keys = stripped, list(stripped)
    groups: dict[tuple[str, tuple[int, ...] | None], list[str]] = {}
    shapes = {n: s for n, s, _ in expected}
    known = all(s is not None for s in shapes.values())
    for key in keys:
        shape = tuple(state_dict[key].shape) if known else None
        groups.setdefault((key.rpartition(".")[2], shape), []).append(key)
    wanted: dict[tuple[str, tuple[int, ...] | None], list[tuple[str, bool]]] = {}
    for name, shape, req in expected:
        wanted.setdefault((name.rpartition(".")[2], shape if known else None), []).append(
            (name, req))
    out: dict[str, Any] = {}
    for group, have in groups.items():
        want = wanted.get(group, [])
        must = [n for n, req in want if req]
        if len(have) == len(want):
            targets = [n for n, _ in want]
        elif len(have) == len(must):
            targets = must
        else:
            leaf, shape = group
            what = f"'{leaf}' tensors" + (f" of shape {shape}" if shape is not None else "")
            raise ValueError(
                f"The names do not pair up: the state_dict has {len(have)} {what} "
                f"({', '.join(have[:4])}{', ...' if len(have) > 4 else ''}), the architecture "
                f"{len(want)}. Rename the keys yourself."
            )
        for src, dst in zip(have, targets, strict=True):
            if known and math.prod(state_dict[src].shape) != math.prod(shapes[dst] or ()):
                raise ValueError(f"{src!r} has shape {tuple(state_dict[src].shape)}, {dst!r} "
                                 f"needs {shapes[dst]}.")
            out[dst] = state_dict[src]
    missing = sorted(required - set(out))
    if missing:
        raise ValueError(f"After renaming, the architecture's {missing[:4]} have no tensor.")
    return out
