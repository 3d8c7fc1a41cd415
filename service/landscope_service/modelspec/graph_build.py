"""A checked ``graph`` architecture -> a ``torch.nn.Module`` (worker side, torch).

The module is built from the JSON alone: every op is a fixed torch call from the table
below, and layers with parameters are the stock ``torch.nn`` modules (``nn.Conv2d``,
``nn.BatchNorm2d``, ``nn.MultiheadAttention``, ...) registered at their node's dotted
path, so ``state_dict()`` keys are the node names (``layer1.0.conv1.weight``) and the
products cost what the user's own module costs. No user code runs: nothing is
unpickled, scripted or imported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from .graph import GraphInfo, GraphNode
from .graph_perm import permutation_spec

__all__ = ["GraphModule", "init_graph_params"]

Step = Callable[[list[Tensor]], Tensor]
ModuleStep = Callable[[Any, list[Tensor]], Tensor]


def _quadratic(z: Tensor) -> Tensor:
    return z**2


def _activation(node: GraphNode) -> Step:
    a = node.attrs
    simple: dict[str, Callable[[Tensor], Tensor]] = {
        "identity": lambda z: z,
        "relu": F.relu,
        "quadratic": _quadratic,
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "silu": F.silu,
        "selu": F.selu,
        "relu6": F.relu6,
        "mish": F.mish,
        "hardswish": F.hardswish,
        "hardsigmoid": F.hardsigmoid,
        "softsign": F.softsign,
        "logsigmoid": F.logsigmoid,
        "tanhshrink": F.tanhshrink,
    }
    op = node.op
    if op in simple:
        fn = simple[op]
        return lambda xs: fn(xs[0])
    if op == "leaky_relu":
        return lambda xs: F.leaky_relu(xs[0], a["negative_slope"])
    if op == "softplus":
        return lambda xs: F.softplus(xs[0], a["beta"], a["threshold"])
    if op == "gelu":
        return lambda xs: F.gelu(xs[0], approximate=a["approximate"])
    if op == "elu":
        return lambda xs: F.elu(xs[0], a["alpha"])
    if op == "celu":
        return lambda xs: F.celu(xs[0], a["alpha"])
    if op == "hardtanh":
        return lambda xs: F.hardtanh(xs[0], a["min_val"], a["max_val"])
    raise ValueError(f"Unknown activation {op!r}.")


def _module_for(node: GraphNode) -> nn.Module:
    """The stock torch module of a node with parameters (input sizes from the spec)."""
    a, op = node.attrs, node.op
    shape = node.in_shapes[0] if node.in_shapes else ()
    if op == "linear":
        return nn.Linear(shape[-1], a["out_features"], bias=a["bias"])
    if op in ("conv1d", "conv2d"):
        cls = nn.Conv1d if op == "conv1d" else nn.Conv2d
        return cls(
            shape[0],
            a["out_channels"],
            kernel_size=tuple(a["kernel_size"]),
            stride=tuple(a["stride"]),
            padding=tuple(a["padding"]),
            dilation=tuple(a["dilation"]),
            groups=a["groups"],
            bias=a["bias"],
        )
    if op in ("batchnorm1d", "batchnorm2d"):
        cls_bn = nn.BatchNorm1d if op == "batchnorm1d" else nn.BatchNorm2d
        return cls_bn(shape[0], eps=a["eps"], affine=a["affine"], track_running_stats=True)
    if op == "layernorm":
        return nn.LayerNorm(
            a["normalized_shape"],
            eps=a["eps"],
            elementwise_affine=a["elementwise_affine"],
            bias=a["bias"],
        )
    if op == "groupnorm":
        return nn.GroupNorm(a["num_groups"], shape[0], eps=a["eps"], affine=a["affine"])
    if op == "embedding":
        return nn.Embedding(a["num_embeddings"], a["embedding_dim"], padding_idx=a["padding_idx"])
    if op == "multihead_attention":
        return nn.MultiheadAttention(shape[-1], a["num_heads"], bias=a["bias"], batch_first=True)
    raise ValueError(f"Op {op!r} has no module.")


class _Mask:
    """Causal masks by (length, device), made once."""

    def __init__(self) -> None:
        self.cache: dict[tuple[int, torch.device], Tensor] = {}

    def __call__(self, n: int, device: torch.device) -> Tensor:
        key = (n, device)
        if key not in self.cache:
            self.cache[key] = torch.ones(n, n, dtype=torch.bool, device=device).triu(1)
        return self.cache[key]


class GraphModule(nn.Module):
    """The network of a checked graph; ``state_dict`` keys are the node names.

    Args:
        info: from :func:`.graph.analyze_graph` (via :func:`.shapes.analyze`).

    Attributes:
        graph_info: the checked graph.
        permutation_spec: its weight-space permutation groups
            (:func:`.graph_perm.permutation_spec`), read by permutation alignment.
    """

    def __init__(self, info: GraphInfo) -> None:
        super().__init__()
        self.graph_info = info
        self.permutation_spec = permutation_spec(info)
        self._masks = _Mask()
        # (name, inputs, step, frees, path): a step with a path is called with the
        # submodule at that path, looked up on every call, so copies of this module
        # (copy.deepcopy) and torch.func.functional_call see their own parameters
        self._steps: list[
            tuple[str, tuple[str, ...], Step | ModuleStep, tuple[str, ...], str | None]
        ] = []
        first = {n.module: n for n in reversed(info.nodes) if n.module in info.modules}
        for module in info.modules:  # registration order = state_dict order
            self._register(first[module])
        last_use: dict[str, int] = {}
        for i, node in enumerate(info.nodes):
            for src in node.inputs:
                last_use[src] = i
        for i, node in enumerate(info.nodes):
            frees = tuple(
                src for src in dict.fromkeys(node.inputs)
                if last_use.get(src) == i and src != info.output
            )
            step, path = self._step(node)
            self._steps.append((node.name, node.inputs, step, frees, path))

    # ------------------------------------------------------------------ building
    def _container(self, path: str) -> nn.Module:
        mod: nn.Module = self
        if not path:
            return mod
        for part in path.split("."):
            child = mod._modules.get(part)
            if child is None:
                child = nn.Module()
                mod.add_module(part, child)
            mod = child
        return mod

    def _register(self, node: GraphNode) -> nn.Module:
        parent_path, _, leaf = node.module.rpartition(".")
        parent = self._container(parent_path)
        if node.op in ("parameter", "buffer"):
            value = torch.zeros(node.attrs["shape"])
            if node.op == "parameter":
                parent.register_parameter(leaf, nn.Parameter(value))
            else:
                parent.register_buffer(leaf, value)
            return parent
        module = _module_for(node)
        existing = parent._modules.get(leaf)
        if existing is not None:  # a container made earlier for a deeper path
            for name, child in existing._modules.items():
                if child is not None:
                    module.add_module(name, child)
        parent.add_module(leaf, module)
        return module

    def _step(self, node: GraphNode) -> tuple[Step | ModuleStep, str | None]:
        op = node.op
        if op in ("parameter", "buffer"):
            parent, _, leaf = node.module.rpartition(".")
            return (lambda m, xs: getattr(m, leaf)), parent
        if op in ("linear", "conv1d", "conv2d", "batchnorm1d", "batchnorm2d", "layernorm",
                  "groupnorm"):
            return (lambda m, xs: m(xs[0])), node.module
        if op == "embedding":
            return (lambda m, xs: m(xs[0].long() if xs[0].is_floating_point() else xs[0])), (
                node.module
            )
        if op == "multihead_attention":
            return self._attention(node), node.module
        return self._plain_step(node), None

    def _plain_step(self, node: GraphNode) -> Step:
        a, op = node.attrs, node.op
        if op == "scaled_dot_product_attention":
            masks = self._masks
            return lambda xs: _sdpa(
                xs[0], xs[1], xs[2],
                masks(xs[0].shape[-2], xs[0].device) if a["causal"] else None, a["scale"],
            )
        if op == "dropout":
            return lambda xs: xs[0]
        if op in ("softmax", "log_softmax"):
            fn = F.softmax if op == "softmax" else F.log_softmax
            return lambda xs: fn(xs[0], dim=a["dim"])
        if op in ("max_pool1d", "max_pool2d"):
            mp = F.max_pool1d if op == "max_pool1d" else F.max_pool2d
            stride = a["stride"] if a["stride"] is not None else a["kernel_size"]
            return lambda xs: mp(xs[0], a["kernel_size"], stride, a["padding"], a["dilation"],
                                 ceil_mode=a["ceil_mode"])
        if op in ("avg_pool1d", "avg_pool2d"):
            ap = F.avg_pool1d if op == "avg_pool1d" else F.avg_pool2d
            stride = a["stride"] if a["stride"] is not None else a["kernel_size"]
            return lambda xs: ap(xs[0], a["kernel_size"], stride, a["padding"], a["ceil_mode"],
                                 a["count_include_pad"])
        if op in ("adaptive_avg_pool1d", "adaptive_avg_pool2d"):
            size = a["output_size"]
            if op == "adaptive_avg_pool1d":
                n1 = size[0] if size[0] is not None else node.in_shapes[0][1]
                return lambda xs: F.adaptive_avg_pool1d(xs[0], n1)
            return lambda xs: F.adaptive_avg_pool2d(xs[0], size)
        if op == "flatten":
            return lambda xs: torch.flatten(xs[0], a["start_dim"], a["end_dim"])
        if op == "reshape":
            shape = tuple(node.out_shape)
            return lambda xs: xs[0].reshape(xs[0].shape[0], *shape)
        if op == "permute":
            return lambda xs: xs[0].permute(*a["dims"])
        if op == "transpose":
            return lambda xs: xs[0].transpose(a["dim0"], a["dim1"])
        if op == "slice":
            index: tuple[Any, ...] = (
                slice(None),
                *(e if isinstance(e, int) else slice(*e) for e in a["index"]),
            )
            return lambda xs: xs[0][index]
        if op == "pad":
            return lambda xs: F.pad(xs[0], a["pad"], value=a["value"])
        if op in ("add", "sub", "mul", "div"):
            return _arith(op, a["scalar"])
        if op == "cat":
            return lambda xs: torch.cat(xs, dim=a["dim"])
        if op == "mean":
            return lambda xs: xs[0].mean(dim=a["dims"], keepdim=a["keepdim"])
        if op == "sum":
            return lambda xs: xs[0].sum(dim=a["dims"], keepdim=a["keepdim"])
        return _activation(node)

    def _attention(self, node: GraphNode) -> ModuleStep:
        """``nn.MultiheadAttention`` (batch first, eval) written out with plain ops.

        The same arithmetic as the module's math path; written out because torch's
        fused CPU attention kernels have no forward-mode derivative, which
        Hessian-vector products (``jvp`` of ``grad``) need.
        """
        causal = bool(node.attrs["causal"])
        heads = int(node.attrs["num_heads"])
        masks = self._masks

        def run(mha: Any, xs: list[Tensor]) -> Tensor:
            q_in, k_in, v_in = (xs * 3)[:3] if len(xs) == 1 else xs
            w = mha.in_proj_weight
            b = mha.in_proj_bias
            e = q_in.shape[-1]
            bq, bk, bv = (None, None, None) if b is None else b.chunk(3)
            q = F.linear(q_in, w[:e], bq)
            k = F.linear(k_in, w[e : 2 * e], bk)
            v = F.linear(v_in, w[2 * e :], bv)
            mask = masks(q.shape[1], q.device) if causal else None
            out = _sdpa(_heads(q, heads), _heads(k, heads), _heads(v, heads), mask, None)
            out = out.transpose(1, 2).reshape(q.shape[0], q.shape[1], e)
            return F.linear(out, mha.out_proj.weight, mha.out_proj.bias)

        return run

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tensor:
        """Run the nodes in order; values are dropped after their last use."""
        info = self.graph_info
        values: dict[str, Tensor] = {info.input_name: x}
        for name, inputs, step, frees, path in self._steps:
            args = [values[s] for s in inputs]
            if path is None:
                values[name] = step(args)  # type: ignore[call-arg]
            else:
                values[name] = step(self.get_submodule(path), args)  # type: ignore[call-arg]
            for src in frees:
                del values[src]
        return values[info.output]


def _heads(t: Tensor, heads: int) -> Tensor:
    """``(N, T, E)`` -> ``(N, heads, T, E / heads)``."""
    n, length, e = t.shape
    return t.reshape(n, length, heads, e // heads).transpose(1, 2)


def _sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float | None) -> Tensor:
    """``softmax(q k^T * scale + mask) v`` (the math of ``F.scaled_dot_product_attention``)."""
    s = (1.0 / math.sqrt(q.shape[-1])) if scale is None else scale
    scores = (q * s) @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def _arith(op: str, scalar: float | None) -> Step:
    import operator

    fn: Callable[[Any, Any], Tensor] = {
        "add": operator.add,
        "sub": operator.sub,
        "mul": operator.mul,
        "div": operator.truediv,
    }[op]
    if scalar is not None:
        s = scalar
        return lambda xs: fn(xs[0], s)
    return lambda xs: fn(xs[0], xs[1])


def init_graph_params(info: GraphInfo, gen: torch.Generator) -> dict[str, Tensor]:
    """Seeded float64 parameters with PyTorch's default initialisation of each layer.

    ``linear``/``conv``: weight and bias ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (what
    ``reset_parameters`` gives); norms: weight 1, bias 0; ``embedding``: ``N(0, 1)``
    (the ``padding_idx`` row 0); ``multihead_attention``: Xavier-uniform
    ``in_proj_weight``, ``out_proj.weight`` ``U(+-1/sqrt(E))``, biases 0; ``parameter``
    nodes ``N(0, 0.02^2)``. Drawn in the order of ``info.params``.
    """
    out: dict[str, Tensor] = {}
    ops = info.modules
    for key, shape in info.params.items():
        if key in ops:  # a parameter node
            out[key] = torch.empty(shape, dtype=torch.float64).normal_(0.0, 0.02, generator=gen)
            continue
        module, _, leaf = key.rpartition(".")
        op = ops.get(module)
        if op is None:  # multihead_attention's out_proj.weight / out_proj.bias
            module = module.rpartition(".")[0]
            op = ops[module]
            leaf = f"out_proj.{leaf}"
        value = torch.empty(shape, dtype=torch.float64)
        if op in ("batchnorm1d", "batchnorm2d", "layernorm", "groupnorm"):
            value.fill_(1.0 if leaf == "weight" else 0.0)
        elif op == "embedding":
            value.normal_(0.0, 1.0, generator=gen)
            node = next(n for n in info.nodes if n.module == module)
            pad = node.attrs["padding_idx"]
            if pad is not None:
                value[pad].zero_()
        elif op == "multihead_attention":
            if leaf == "in_proj_weight":
                bound = math.sqrt(6.0 / (shape[0] + shape[1]))
                value.uniform_(-bound, bound, generator=gen)
            elif leaf == "out_proj.weight":
                bound = 1.0 / math.sqrt(shape[1])
                value.uniform_(-bound, bound, generator=gen)
            else:
                value.zero_()
        else:
            weight = info.params[f"{module}.weight"]
            bound = 1.0 / math.sqrt(math.prod(weight[1:]))
            value.uniform_(-bound, bound, generator=gen)
        out[key] = value
    return out
