"""Architecture spec -> ``torch.nn.Sequential``, initial parameters and a :class:`Problem`.

Worker side: this module imports torch. The module tree follows
:func:`.shapes.layers_of` one layer per index, so ``build_model(arch).state_dict()``
has exactly the names and shapes of :func:`.shapes.param_shapes` and
:func:`.shapes.buffer_shapes` (a test checks it across many specs).

Batch norm is evaluated in eval mode: it normalises with the running statistics (from
the weights file, else mean 0 and variance 1), so the loss is a function of the
parameters alone and does not depend on ``batch_size``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from marshmallow import ValidationError
from torch import Tensor, nn

from ..diagnostics.problem import Problem
from ..diagnostics.streaming import StreamingProblem
from .data import ReadBlob, flatten_messages, load_data, read_blob_or_error
from .graph_build import GraphModule, init_graph_params
from .shapes import ArchitectureInfo, analyze
from .stream import is_streamed, open_source
from .weights import load_weights

__all__ = [
    "Quadratic",
    "Residual",
    "build_model",
    "build_problem",
    "init_buffers",
    "init_params",
]


class Quadratic(nn.Module):
    """The activation ``sigma(z) = z**2``."""

    def forward(self, z: Tensor) -> Tensor:
        """Return ``z**2`` elementwise."""
        return z**2


class Residual(nn.Sequential):
    """A residual block ``x -> x + f(x)`` where ``f`` is the Sequential of its children.

    Its children are numbered like any Sequential, so the parameters of a block at index
    ``i`` are named ``"{i}.{j}.weight"``.
    """

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """Return ``x + f(x)``."""
        return x + super().forward(x)


_ACTIVATION_MODULES: dict[str, type[nn.Module]] = {
    "identity": nn.Identity,
    "relu": nn.ReLU,
    "quadratic": Quadratic,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def _module(layer: dict[str, Any], name: str, info: ArchitectureInfo) -> nn.Module:
    kind = layer["type"]
    shape = info.layer_inputs[name]
    if kind == "leaky_relu":
        return nn.LeakyReLU(negative_slope=float(layer.get("negative_slope", 0.01)))
    if kind in _ACTIVATION_MODULES:
        return _ACTIVATION_MODULES[kind]()
    if kind == "linear":
        return nn.Linear(shape[0], int(layer["out_features"]), bias=bool(layer.get("bias", True)))
    if kind == "conv2d":
        return nn.Conv2d(
            shape[0],
            int(layer["out_channels"]),
            kernel_size=tuple(layer["kernel_size"]),
            stride=tuple(layer.get("stride", (1, 1))),
            padding=tuple(layer.get("padding", (0, 0))),
            bias=bool(layer.get("bias", True)),
        )
    if kind in ("maxpool2d", "avgpool2d"):
        cls = nn.MaxPool2d if kind == "maxpool2d" else nn.AvgPool2d
        stride = layer.get("stride") or layer["kernel_size"]
        return cls(
            kernel_size=tuple(layer["kernel_size"]),
            stride=tuple(stride),
            padding=tuple(layer.get("padding", (0, 0))),
        )
    if kind == "flatten":
        return nn.Flatten()
    if kind == "batchnorm":
        return nn.BatchNorm1d(shape[0]) if len(shape) == 1 else nn.BatchNorm2d(shape[0])
    if kind == "layernorm":
        return nn.LayerNorm(list(shape))
    if kind == "residual":
        return Residual(
            *(_module(sub, f"{name}.{j}", info) for j, sub in enumerate(layer["layers"]))
        )
    raise ValueError(f"Unknown layer type {kind!r}.")


def build_model(arch: dict[str, Any], *, device: torch.device | str = "cpu") -> nn.Module:
    """The ``torch.nn.Sequential`` of an architecture spec (a :class:`.GraphModule` for a graph).

    Args:
        arch: a validated architecture (``mlp``, ``sequential`` or ``graph``).
        device: where to create it; ``"meta"`` allocates nothing (the parameters then
            come from :func:`init_params` or a weights file).

    Returns:
        The module, in eval mode; its own parameters get PyTorch's default init from
        the global RNG (use :func:`init_params` for seeded values).

    Raises:
        SpecError: if the layers do not fit together.
    """
    info = analyze(arch)
    if info.graph is not None:
        with torch.device(device):
            return GraphModule(info.graph).eval()
    with torch.device(device):
        model = nn.Sequential(
            *(_module(layer, str(i), info) for i, layer in enumerate(info.layers))
        )
    return model.eval()


def init_params(
    arch: dict[str, Any],
    seed: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> dict[str, Tensor]:
    """Seeded initial parameters with PyTorch's default distributions.

    Linear and Conv2d weights and biases are ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
    (what ``reset_parameters`` gives, Kaiming-uniform with ``a = sqrt(5)``); norm
    weights are 1 and biases 0. Values are drawn in float64 on the CPU from one
    ``torch.Generator`` seeded with ``seed``, in the order of
    :func:`.shapes.param_shapes`, then cast, so a seed gives the same point on every
    device and (up to rounding) in every dtype.

    Args:
        arch: a validated architecture.
        seed: the ``init_seed``.
        dtype: floating dtype of the result.
        device: where the tensors go.

    Returns:
        ``{name: tensor}`` in the order of :func:`.shapes.param_shapes`.
    """
    info = analyze(arch)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    if info.graph is not None:
        return {
            k: v.to(device=device, dtype=dtype)
            for k, v in init_graph_params(info.graph, gen).items()
        }
    out: dict[str, Tensor] = {}
    for name, shape in info.param_shapes.items():
        module, leaf = name.rsplit(".", 1)
        kind = info.layer_types[module]
        if kind in ("batchnorm", "layernorm"):
            value = torch.ones(shape, dtype=torch.float64) if leaf == "weight" else None
            value = torch.zeros(shape, dtype=torch.float64) if value is None else value
        else:
            weight_shape = info.param_shapes[f"{module}.weight"]
            bound = 1.0 / math.sqrt(math.prod(weight_shape[1:]))
            value = torch.empty(shape, dtype=torch.float64).uniform_(-bound, bound, generator=gen)
        out[name] = value.to(device=device, dtype=dtype)
    return out


def init_buffers(
    arch: dict[str, Any],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> dict[str, Tensor]:
    """Fresh batch-norm statistics: running_mean 0, running_var 1, num_batches_tracked 0."""
    out: dict[str, Tensor] = {}
    for name, shape in analyze(arch).buffer_shapes.items():
        if name.endswith("num_batches_tracked"):
            out[name] = torch.zeros(shape, dtype=torch.long, device=device)
        elif name.endswith("running_var"):
            out[name] = torch.ones(shape, dtype=dtype, device=device)
        else:
            out[name] = torch.zeros(shape, dtype=dtype, device=device)
    return out


def build_problem(
    request: dict[str, Any],
    read_blob: ReadBlob,
    *,
    device: torch.device,
    dtype: torch.dtype,
    blob_file: Callable[[str], Path | bytes] | None = None,
) -> Problem:
    """The :class:`Problem` of a validated job request (worker side).

    Args:
        request: the validated request; uses ``model``, ``data``, ``loss`` and
            ``batch_size``.
        read_blob: reads a blob by id; raises ``KeyError`` for an unknown id.
        device: where the parameters and data go.
        dtype: floating dtype of parameters and data.
        blob_file: a blob's file (local store: its path, memory-mapped) for streamed
            data (``transform`` or ``blobs``, see :mod:`.stream`); ``read_blob`` if None.

    Returns:
        The problem (a :class:`StreamingProblem` for streamed data): model (eval mode,
        its parameters sharing storage with ``problem.params``), params, buffers, x, y,
        loss and batch_size.

    Raises:
        ValueError: if a blob is unknown, the weights or data do not fit the
            architecture (the message starts with the request path, e.g.
            ``"data.inline.y: Class label 7 ..."``), or values overflow ``dtype``.
    """
    try:
        return _build_problem(request, read_blob, device=device, dtype=dtype,
                              blob_file=blob_file)
    except ValidationError as e:
        raise ValueError(flatten_messages(e.messages)) from e


def _build_problem(
    request: dict[str, Any],
    read_blob: ReadBlob,
    *,
    device: torch.device,
    dtype: torch.dtype,
    blob_file: Callable[[str], Path | bytes] | None = None,
) -> Problem:
    model_spec = request["model"]
    arch = model_spec["architecture"]
    loss = request.get("loss", "mse")
    info = analyze(arch)
    if model_spec.get("weights"):
        raw = read_blob_or_error(read_blob, model_spec["weights"], ("model", "weights"))
        params, buffers = load_weights(
            raw, info.param_shapes, buffer_shapes=info.buffer_shapes, device=device, dtype=dtype
        )
    else:
        params = init_params(arch, int(model_spec.get("init_seed", 0)), dtype=dtype, device=device)
        buffers = init_buffers(arch, dtype=dtype, device=device)
    model = build_model(arch, device="meta")
    model.load_state_dict({**params, **buffers}, strict=True, assign=True)
    model.eval()
    if is_streamed(request["data"]):
        source = open_source(request["data"], blob_file or read_blob, loss=loss,
                             input_shape=tuple(info.input_shape), output_dim=info.output_dim)
        return StreamingProblem.from_source(
            source, sample_shape=tuple(info.input_shape),
            target_shape=() if loss == "cross_entropy" else (info.output_dim,),
            model=model, params=params, loss=loss, batch_size=request.get("batch_size"),
            buffers=buffers)
    x, y = load_data(
        request["data"],
        read_blob,
        loss=loss,
        device=device,
        dtype=dtype,
        input_dim=info.input_shape,
        output_dim=info.output_dim,
    )
    return Problem(
        model=model,
        params=params,
        x=x,
        y=y,
        loss=loss,
        batch_size=request.get("batch_size"),
        buffers=buffers,
    )
