"""Parameter names and shapes of an architecture spec, without torch.

Every architecture is first expanded into one canonical list of layers (the
``sequential`` form); :mod:`.build` turns the same list into a ``torch.nn.Sequential``,
so the names below are exactly the keys of that module's ``state_dict``.

Naming rule: layer ``i`` of the list is module ``i`` of the ``nn.Sequential``; a layer
with parameters contributes ``"{i}.weight"`` and ``"{i}.bias"``; a residual block is a
``Residual`` module (an ``nn.Sequential`` whose output is added to its input), so the
layers inside it are named ``"{i}.{j}.weight"``. Activations are modules too (they take
an index and have no parameters), ``identity`` included, so an ``mlp`` with ``hidden``
widths ``[h1, h2]`` has ``0.weight 0.bias 2.weight 2.bias 4.weight 4.bias``.

For the ``mlp`` form:

* ``batchnorm: true`` puts a ``BatchNorm1d`` between each hidden Linear and its
  activation, so every hidden layer takes three indices (Linear, BatchNorm1d,
  activation): ``0.weight 0.bias 1.weight 1.bias 1.running_mean 1.running_var
  1.num_batches_tracked 3.weight ...``.
* ``residual: true`` (all hidden widths equal) keeps the first hidden layer plain and
  wraps every later hidden layer ``h -> h + act(W h + b)`` in a ``Residual`` block:
  ``[8, 8, 8]`` gives ``0.weight 0.bias 2.0.weight 2.0.bias 3.0.weight 3.0.bias
  4.weight 4.bias``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .graph import ACTIVATION_OPS, GraphError, GraphInfo, analyze_graph

__all__ = [
    "ACTIVATIONS",
    "LIMITS",
    "ArchitectureInfo",
    "SpecError",
    "activation",
    "analyze",
    "buffer_shapes",
    "input_dim",
    "input_shape",
    "layers_of",
    "num_params",
    "output_dim",
    "param_shapes",
]

ACTIVATIONS: tuple[str, ...] = (
    "identity",
    "relu",
    "leaky_relu",
    "quadratic",
    "tanh",
    "sigmoid",
    "softplus",
    "gelu",
    "silu",
)
"""Activation names, the same in the ``mlp`` form and as ``sequential`` layer types."""

LIMITS: dict[str, int] = {
    "max_params": 100_000_000,
    "max_width": 65_536,
    "max_hidden_layers": 64,
    "max_layers": 256,
    "max_nesting": 8,
    "max_kernel": 64,
    "max_input_numel": 10_000_000,
    "max_activation_numel": 10_000_000,
}
"""Bounds that keep a request from asking for an absurd model (checked at submit)."""


class SpecError(ValueError):
    """An architecture that is well-typed but does not fit together.

    Attributes:
        path: where the problem is, relative to the architecture object, e.g.
            ``("layers", 2)`` or ``("layers", 3, "layers", 0, "out_features")``.
        message: what is wrong and what to do.
    """

    def __init__(self, path: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.path: tuple[str | int, ...] = tuple(path)
        self.message = message

    def as_messages(self) -> dict[str | int, Any] | list[str]:
        """Nested marshmallow-style message dict, e.g. ``{"layers": {2: ["..."]}}``."""
        out: dict[str | int, Any] | list[str] = [self.message]
        for key in reversed(self.path):
            out = {key: out}
        return out


@dataclass(frozen=True)
class ArchitectureInfo:
    """Everything known about an architecture without building it.

    Attributes:
        layers: the canonical ``sequential`` layer list (the ``mlp`` form expanded).
        param_shapes: parameter name -> shape, in ``nn.Module.named_parameters`` order.
        buffer_shapes: buffer name -> shape (batch-norm statistics).
        input_shape: shape of one input sample, e.g. ``(3,)`` or ``(1, 28, 28)``.
        output_shape: shape of one output, always ``(r,)``.
        num_params: P, the total parameter count.
        activations: activation types in the order they appear.
        layer_inputs: module name (``"0"``, ``"3.1"``) -> shape of that layer's input.
        layer_types: module name -> layer type (for a graph: module path -> op).
        input_dtype: ``"float"``, or ``"int64"`` for token ids (graph only).
        graph: the checked graph of a ``graph`` architecture, else ``None``.
    """

    layers: tuple[dict[str, Any], ...]
    param_shapes: dict[str, tuple[int, ...]]
    buffer_shapes: dict[str, tuple[int, ...]]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    num_params: int
    activations: tuple[str, ...]
    layer_inputs: dict[str, tuple[int, ...]]
    layer_types: dict[str, str]
    input_dtype: str = "float"
    graph: GraphInfo | None = None

    @property
    def input_dim(self) -> int:
        """Number of input features per sample (the product of ``input_shape``)."""
        return math.prod(self.input_shape)

    @property
    def output_dim(self) -> int:
        """r, the number of outputs (classes for cross_entropy)."""
        return self.output_shape[0]


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    a, b = value
    return (int(a), int(b))


def _mlp_layers(arch: dict[str, Any]) -> list[dict[str, Any]]:
    hidden: list[int] = list(arch.get("hidden", []))
    act = arch.get("activation", "tanh")
    bias = bool(arch.get("bias", True))
    residual = bool(arch.get("residual", False))
    batchnorm = bool(arch.get("batchnorm", False))
    if residual and len(set(hidden)) > 1:
        raise SpecError(
            ("residual",),
            f"residual: true needs all hidden widths equal (a skip connection adds a "
            f"layer's input to its output), got hidden={hidden}.",
        )
    layers: list[dict[str, Any]] = []
    for i, width in enumerate(hidden):
        block: list[dict[str, Any]] = [{"type": "linear", "out_features": width, "bias": bias}]
        if batchnorm:
            block.append({"type": "batchnorm"})
        block.append({"type": act})
        if residual and i > 0:
            layers.append({"type": "residual", "layers": block})
        else:
            layers.extend(block)
    layers.append({"type": "linear", "out_features": int(arch["output_dim"]), "bias": bias})
    return layers


def layers_of(arch: dict[str, Any]) -> list[dict[str, Any]]:
    """The canonical layer list of an architecture (``mlp`` expanded).

    Args:
        arch: a validated architecture (``{"type": "mlp", ...}`` or ``"sequential"``).

    Returns:
        The layers as ``sequential`` layer dicts.

    Raises:
        ValueError: if ``type`` is unknown.
    """
    kind = arch.get("type")
    if kind == "mlp":
        return _mlp_layers(arch)
    if kind == "sequential":
        return list(arch["layers"])
    if kind == "graph":
        return []
    raise ValueError(
        f"Unknown architecture type: expected 'mlp', 'sequential' or 'graph', got {kind!r}."
    )


def _arch_input_shape(arch: dict[str, Any]) -> tuple[int, ...]:
    if arch.get("type") == "mlp":
        return (int(arch["input_dim"]),)
    if arch.get("type") == "graph":
        return tuple(int(s) for s in arch["input"]["shape"])
    return tuple(int(s) for s in arch["input_shape"])


class _Walker:
    """Propagates a sample shape through the layers, collecting names and shapes."""

    def __init__(self) -> None:
        self.params: dict[str, tuple[int, ...]] = {}
        self.buffers: dict[str, tuple[int, ...]] = {}
        self.activations: list[str] = []
        self.layer_inputs: dict[str, tuple[int, ...]] = {}
        self.layer_types: dict[str, str] = {}
        self.count = 0

    def walk(
        self,
        layers: Sequence[dict[str, Any]],
        shape: tuple[int, ...],
        prefix: str,
        path: tuple[str | int, ...],
        depth: int,
    ) -> tuple[int, ...]:
        if depth > LIMITS["max_nesting"]:
            raise SpecError(path, f"Residual blocks nest at most {LIMITS['max_nesting']} deep.")
        for i, layer in enumerate(layers):
            self.count += 1
            if self.count > LIMITS["max_layers"]:
                raise SpecError(
                    path, f"At most {LIMITS['max_layers']} layers in all (nested included)."
                )
            shape = self._layer(layer, shape, f"{prefix}{i}", (*path, i), depth)
            numel = math.prod(shape)
            if numel > LIMITS["max_activation_numel"]:
                raise SpecError(
                    (*path, i),
                    f"This layer's output has {numel} values per sample (shape {shape}); "
                    f"at most {LIMITS['max_activation_numel']} are allowed.",
                )
        return shape

    def _layer(
        self,
        layer: dict[str, Any],
        shape: tuple[int, ...],
        name: str,
        path: tuple[str | int, ...],
        depth: int,
    ) -> tuple[int, ...]:
        kind = layer["type"]
        self.layer_inputs[name] = shape
        self.layer_types[name] = kind
        if kind in ACTIVATIONS:
            self.activations.append(kind)
            return shape
        if kind == "linear":
            if len(shape) != 1:
                raise SpecError(
                    path,
                    f"linear needs a flat input (features,), got shape {shape}; "
                    f"add a flatten layer before it.",
                )
            out = int(layer["out_features"])
            self.params[f"{name}.weight"] = (out, shape[0])
            if layer.get("bias", True):
                self.params[f"{name}.bias"] = (out,)
            return (out,)
        if kind == "flatten":
            return (math.prod(shape),)
        if kind == "batchnorm":
            if len(shape) not in (1, 3):
                raise SpecError(
                    path,
                    f"batchnorm needs a flat (features,) or (channels, height, width) input, "
                    f"got shape {shape}.",
                )
            c = shape[0]
            self.params[f"{name}.weight"] = (c,)
            self.params[f"{name}.bias"] = (c,)
            self.buffers[f"{name}.running_mean"] = (c,)
            self.buffers[f"{name}.running_var"] = (c,)
            self.buffers[f"{name}.num_batches_tracked"] = ()
            return shape
        if kind == "layernorm":
            self.params[f"{name}.weight"] = shape
            self.params[f"{name}.bias"] = shape
            return shape
        if kind in ("conv2d", "maxpool2d", "avgpool2d"):
            return self._spatial(layer, shape, name, path)
        if kind == "residual":
            inner = self.walk(layer["layers"], shape, f"{name}.", (*path, "layers"), depth + 1)
            if inner != shape:
                raise SpecError(
                    (*path, "layers"),
                    f"A residual block must keep the shape of its input: input {shape}, "
                    f"output {inner}.",
                )
            return shape
        raise SpecError((*path, "type"), f"Unknown layer type {kind!r}.")

    def _spatial(
        self,
        layer: dict[str, Any],
        shape: tuple[int, ...],
        name: str,
        path: tuple[str | int, ...],
    ) -> tuple[int, ...]:
        kind = layer["type"]
        if len(shape) != 3:
            raise SpecError(
                path, f"{kind} needs a (channels, height, width) input, got shape {shape}."
            )
        c, h, w = shape
        kh, kw = _pair(layer["kernel_size"])
        stride = layer.get("stride")
        sh, sw = _pair(stride) if stride is not None else ((kh, kw) if kind != "conv2d" else (1, 1))
        ph, pw = _pair(layer.get("padding", 0))
        if kind != "conv2d" and (2 * ph > kh or 2 * pw > kw):
            raise SpecError(
                (*path, "padding"),
                f"{kind} padding must be at most half the kernel size, got padding "
                f"({ph}, {pw}) for kernel ({kh}, {kw}).",
            )
        oh = (h + 2 * ph - kh) // sh + 1
        ow = (w + 2 * pw - kw) // sw + 1
        if oh < 1 or ow < 1 or h + 2 * ph < kh or w + 2 * pw < kw:
            raise SpecError(
                (*path, "kernel_size"),
                f"Kernel ({kh}, {kw}) does not fit the padded input ({h + 2 * ph}, "
                f"{w + 2 * pw}) of shape {shape}.",
            )
        if kind == "conv2d":
            out_c = int(layer["out_channels"])
            self.params[f"{name}.weight"] = (out_c, c, kh, kw)
            if layer.get("bias", True):
                self.params[f"{name}.bias"] = (out_c,)
            return (out_c, oh, ow)
        return (c, oh, ow)


def analyze(arch: dict[str, Any]) -> ArchitectureInfo:
    """Names, shapes and sizes of a validated architecture.

    Args:
        arch: the architecture, as loaded by :class:`.schemas.ArchitectureSchema`.

    Returns:
        The :class:`ArchitectureInfo`.

    Raises:
        SpecError: if the layers do not fit together or exceed :data:`LIMITS`; ``path``
            says where, relative to the architecture.
    """
    if arch.get("type") == "graph":
        return _analyze_graph(arch)
    layers = layers_of(arch)
    in_shape = _arch_input_shape(arch)
    walker = _Walker()
    path_root: tuple[str | int, ...] = ("layers",) if arch.get("type") == "sequential" else ()
    out_shape = walker.walk(layers, in_shape, "", path_root, 0)
    if len(out_shape) != 1:
        raise SpecError(
            path_root or ("output_dim",),
            f"The network's output must be flat (r,), got shape {out_shape}; end with "
            f"flatten and linear.",
        )
    total = sum(math.prod(s) for s in walker.params.values())
    if total > LIMITS["max_params"]:
        raise SpecError(
            path_root or ("hidden",),
            f"The architecture has {total} parameters; at most {LIMITS['max_params']} are allowed.",
        )
    return ArchitectureInfo(
        layers=tuple(layers),
        param_shapes=walker.params,
        buffer_shapes=walker.buffers,
        input_shape=in_shape,
        output_shape=out_shape,
        num_params=total,
        activations=tuple(walker.activations),
        layer_inputs=walker.layer_inputs,
        layer_types=walker.layer_types,
    )


def _analyze_graph(arch: dict[str, Any]) -> ArchitectureInfo:
    try:
        g = analyze_graph(
            arch,
            max_params=LIMITS["max_params"],
            max_activation_numel=LIMITS["max_activation_numel"],
        )
    except GraphError as e:
        raise SpecError(e.path, e.message) from e
    layer_inputs: dict[str, tuple[int, ...]] = {}
    for node in g.nodes:
        if node.module in g.modules and node.module not in layer_inputs:
            layer_inputs[node.module] = node.in_shapes[0] if node.in_shapes else ()
    return ArchitectureInfo(
        layers=(),
        param_shapes=dict(g.params),
        buffer_shapes=dict(g.buffers),
        input_shape=g.input_shape,
        output_shape=g.output_shape,
        num_params=sum(math.prod(s) for s in g.params.values()),
        activations=tuple(n.op for n in g.nodes if n.op in ACTIVATION_OPS),
        layer_inputs=layer_inputs,
        layer_types=dict(g.modules),
        input_dtype=g.input_dtype,
        graph=g,
    )


def param_shapes(arch: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape, named like the equivalent ``torch.nn.Sequential``.

    Args:
        arch: a validated architecture.

    Returns:
        For ``{"type": "mlp", "input_dim": 3, "hidden": [8], "output_dim": 1}``:
        ``{"0.weight": (8, 3), "0.bias": (8,), "2.weight": (1, 8), "2.bias": (1,)}``.
    """
    return dict(analyze(arch).param_shapes)


def buffer_shapes(arch: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Buffer name -> shape (``running_mean``, ``running_var``, ``num_batches_tracked``)."""
    return dict(analyze(arch).buffer_shapes)


def num_params(arch: dict[str, Any]) -> int:
    """P, the number of trainable parameters."""
    return analyze(arch).num_params


def input_shape(arch: dict[str, Any]) -> tuple[int, ...]:
    """Shape of one input sample: ``(input_dim,)`` for an mlp, ``input_shape`` otherwise."""
    return _arch_input_shape(arch)


def input_dim(arch: dict[str, Any]) -> int:
    """Number of input features per sample (product of :func:`input_shape`)."""
    return math.prod(_arch_input_shape(arch))


def output_dim(arch: dict[str, Any]) -> int:
    """r, the number of network outputs."""
    return analyze(arch).output_dim


def activation(arch: dict[str, Any]) -> str | None:
    """The activation of the network: the mlp's, or the only one a sequential uses.

    Returns:
        The activation name, or ``None`` when a sequential uses none or several kinds.
    """
    if arch.get("type") == "mlp":
        return str(arch.get("activation", "tanh"))
    kinds = set(analyze(arch).activations)
    return kinds.pop() if len(kinds) == 1 else None
