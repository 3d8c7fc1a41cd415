"""Variants of a base network, derived by stated rules, and their seeded initialisation.

The rules work on a plain ``nn.Sequential`` of ``nn.Linear`` layers and parameter-free
activations (what an ``mlp`` or a ``sequential`` of linear layers builds). Parameter names
stay the Sequential's (``0.weight``, ``0.bias``, ``2.weight``, ...).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..problem import Params, Problem

__all__ = ["BATCHNORM_RULE", "DEPTH_RULE", "WIDEN_RULE", "ScaledResidual", "check_plain_mlp",
           "deepen", "init_params", "insert_batchnorm", "variant_problem", "widen"]

WIDEN_RULE = ("every hidden linear layer's output width w becomes max(1, round(w * m)); the "
              "next layer's input width follows; input and output widths are unchanged")


BATCHNORM_RULE = ("a BatchNorm1d (affine, scale 1 and shift 0 at the start, normalising with the "
                  "statistics of the whole data set: full-batch training) is inserted after "
                  "every hidden linear layer, before its activation")


DEPTH_RULE = ("depth d: the base network's first hidden width w and activation, d hidden "
              "layers: Linear(input, w), then d - 1 hidden Linear(w, w) layers, each with the "
              "activation, then Linear(w, output); residual: each of the d - 1 hidden layers "
              "wrapped as x + f(x) / sqrt(d) (branch scaled 1/sqrt(d))")


class ScaledResidual(nn.Sequential):
    """``x -> x + scale * f(x)``, ``f`` the Sequential of its children (names ``i.j.*``)."""

    def __init__(self, *layers: nn.Module, scale: float) -> None:
        super().__init__(*layers)
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Return ``x + scale * f(x)``."""
        return x + self.scale * super().forward(x)


def deepen(model: nn.Module, depth: int, *, residual: bool) -> nn.Sequential:
    """The depth-``depth`` plain or residual variant of ``model`` (:data:`DEPTH_RULE`)."""
    linears = check_plain_mlp(model, need_hidden=True)
    assert isinstance(model, nn.Sequential)
    first = model[linears[0]]
    last = model[linears[-1]]
    assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)
    acts = [m for m in model if not isinstance(m, nn.Linear)]
    act = acts[0] if acts else nn.Identity()
    w = first.out_features
    layers: list[nn.Module] = [nn.Linear(first.in_features, w, device="meta"),
                               copy.deepcopy(act)]
    for _ in range(depth - 1):
        block = [nn.Linear(w, w, device="meta"), copy.deepcopy(act)]
        if residual:
            layers.append(ScaledResidual(*block, scale=1.0 / math.sqrt(depth)))
        else:
            layers += block
    layers.append(nn.Linear(w, last.out_features, bias=last.bias is not None, device="meta"))
    return nn.Sequential(*layers)


def check_plain_mlp(model: nn.Module, *, need_hidden: bool = False) -> list[int]:
    """Indices of the Linear layers of a plain MLP ``model``.

    Raises:
        ValueError: naming what makes the network unsuitable.
    """
    if not isinstance(model, nn.Sequential):
        raise ValueError("the base network must be a sequence of layers (an mlp or a "
                         "sequential architecture), not a graph")
    linears = []
    for i, mod in enumerate(model):
        if isinstance(mod, nn.Linear):
            linears.append(i)
        elif isinstance(mod, nn.Sequential):
            raise ValueError(f"layer {i} is a residual block; this claim needs a plain stack "
                             "of linear layers and activations")
        elif any(True for _ in mod.parameters()) or any(True for _ in mod.buffers()):
            raise ValueError(f"layer {i} ({type(mod).__name__}) has parameters or buffers; "
                             "this claim needs linear layers and activations only")
    if not linears:
        raise ValueError("the base network has no linear layer")
    if need_hidden and len(linears) < 2:
        raise ValueError("the base network has no hidden layer to widen; give at least one "
                         "hidden width")
    return linears


def widen(model: nn.Module, factor: float) -> nn.Sequential:
    """A copy of ``model`` with every hidden width multiplied by ``factor`` (:data:`WIDEN_RULE`)."""
    linears = check_plain_mlp(model, need_hidden=True)
    assert isinstance(model, nn.Sequential)
    layers: list[nn.Module] = []
    prev_out: int | None = None
    last = linears[-1]
    for i, mod in enumerate(model):
        if isinstance(mod, nn.Linear):
            fan_in = mod.in_features if prev_out is None else prev_out
            out = mod.out_features if i == last else max(1, round(mod.out_features * factor))
            layers.append(nn.Linear(fan_in, out, bias=mod.bias is not None, device="meta"))
            prev_out = out
        else:
            layers.append(copy.deepcopy(mod))
    return nn.Sequential(*layers)


def insert_batchnorm(model: nn.Module) -> nn.Sequential:
    """A copy of ``model`` with batch norm after every hidden Linear (:data:`BATCHNORM_RULE`).

    The batch-norm layers keep no running statistics: they always normalise with the
    statistics of the batch they see (the whole data set, as the sweep trains full-batch).
    """
    linears = check_plain_mlp(model, need_hidden=True)
    assert isinstance(model, nn.Sequential)
    layers: list[nn.Module] = []
    for i, mod in enumerate(model):
        if isinstance(mod, nn.Linear):
            layers.append(nn.Linear(mod.in_features, mod.out_features,
                                    bias=mod.bias is not None, device="meta"))
            if i != linears[-1]:
                layers.append(nn.BatchNorm1d(mod.out_features, track_running_stats=False,
                                             device="meta"))
        else:
            layers.append(copy.deepcopy(mod))
    return nn.Sequential(*layers).train()


def init_params(model: nn.Module, seed: int, *, dtype: torch.dtype,
                device: torch.device) -> Params:
    """PyTorch's default initialisation of every Linear, drawn from ``seed``.

    Weights and biases are ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (``nn.Linear``'s
    ``reset_parameters``), drawn in float64 on the CPU in parameter order, then cast;
    batch-norm scales are 1 and shifts 0.
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    out: Params = {}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.BatchNorm1d):
            out[f"{name}.weight"] = torch.ones(mod.num_features, dtype=dtype, device=device)
            out[f"{name}.bias"] = torch.zeros(mod.num_features, dtype=dtype, device=device)
        elif isinstance(mod, nn.Linear):
            bound = 1.0 / math.sqrt(max(mod.in_features, 1))
            for leaf in ("weight", "bias"):
                p = getattr(mod, leaf)
                if p is None:
                    continue
                v = torch.empty(tuple(p.shape), dtype=torch.float64).uniform_(
                    -bound, bound, generator=gen)
                out[f"{name}.{leaf}"] = v.to(dtype=dtype, device=device)
    return out


def variant_problem(base: Problem, model: nn.Module, seed: int) -> Problem:
    """The base problem's data and loss with ``model`` at its seed-``seed`` initialisation.

    A model with batch norm is evaluated on the whole data set at once (its statistics are
    those of the full batch), whatever the base problem's ``batch_size``.
    """
    params = init_params(model, seed, dtype=base.dtype, device=base.device)
    has_bn = any(isinstance(m, nn.BatchNorm1d) for m in model.modules())
    return Problem(model=model, params=params, x=base.x, y=base.y, loss=base.loss,
                   batch_size=None if has_bn else base.batch_size)
