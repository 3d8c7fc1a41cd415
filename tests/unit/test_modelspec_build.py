"""modelspec shapes (torch-free) agree with the torch modules build.py makes."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import torch
from torch import nn

from landscope_service.modelspec import (
    ACTIVATIONS,
    ArchitectureSchema,
    activation,
    buffer_shapes,
    input_dim,
    num_params,
    output_dim,
    param_shapes,
)
from landscope_service.modelspec.build import Quadratic, Residual, build_model, init_params


def _mlp(**kw: Any) -> dict[str, Any]:
    return {"type": "mlp", "input_dim": 3, "hidden": [8, 8], "output_dim": 2, **kw}


def _seq(input_shape: list[int], *layers: dict[str, Any]) -> dict[str, Any]:
    return {"type": "sequential", "input_shape": input_shape, "layers": list(layers)}


SPECS: list[dict[str, Any]] = [
    *(_mlp(activation=a) for a in ACTIVATIONS),
    _mlp(hidden=[]),
    _mlp(hidden=[5], bias=False),
    _mlp(hidden=[4, 4, 4], residual=True),
    _mlp(hidden=[4, 4, 4], residual=True, batchnorm=True, activation="relu"),
    _mlp(hidden=[6, 3], batchnorm=True),
    _mlp(hidden=[7], residual=True),
    _seq([4], {"type": "linear", "out_features": 5}, {"type": "tanh"},
         {"type": "layernorm"}, {"type": "linear", "out_features": 1, "bias": False}),
    _seq([1, 8, 8],
         {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1},
         {"type": "batchnorm"}, {"type": "relu"},
         {"type": "residual", "layers": [
             {"type": "conv2d", "out_channels": 3, "kernel_size": [3, 3], "padding": [1, 1]},
             {"type": "gelu"},
             {"type": "residual", "layers": [{"type": "layernorm"}, {"type": "silu"}]}]},
         {"type": "maxpool2d", "kernel_size": 2},
         {"type": "avgpool2d", "kernel_size": 2, "stride": 1},
         {"type": "flatten"}, {"type": "batchnorm"},
         {"type": "linear", "out_features": 4}, {"type": "quadratic"},
         {"type": "linear", "out_features": 3}),
    _seq([2, 5, 7], {"type": "conv2d", "out_channels": 4, "kernel_size": [2, 3],
                     "stride": [1, 2], "bias": False},
         {"type": "leaky_relu", "negative_slope": 0.2}, {"type": "flatten"},
         {"type": "linear", "out_features": 2}),
]  # fmt: skip


@pytest.mark.parametrize("raw", SPECS, ids=[f"spec{i}" for i in range(len(SPECS))])
def test_shapes_agree_with_built_module(raw: dict[str, Any]) -> None:
    arch = ArchitectureSchema().load(raw)
    model = build_model(arch)
    assert param_shapes(arch) == {k: tuple(v.shape) for k, v in model.named_parameters()}
    assert buffer_shapes(arch) == {k: tuple(v.shape) for k, v in model.named_buffers()}
    assert list(param_shapes(arch)) == [k for k, _ in model.named_parameters()]
    assert num_params(arch) == sum(p.numel() for p in model.parameters())
    params = init_params(arch, 0, dtype=torch.float64)
    assert {k: tuple(v.shape) for k, v in params.items()} == param_shapes(arch)
    shape = (5, input_dim(arch)) if arch["type"] == "mlp" else (5, *arch["input_shape"])
    out = torch.func.functional_call(model.double(), params, (torch.randn(shape).double(),))
    assert out.shape == (5, output_dim(arch))


def test_mlp_names_match_a_users_sequential() -> None:
    arch = ArchitectureSchema().load(_mlp(activation="quadratic"))
    user = nn.Sequential(nn.Linear(3, 8), Quadratic(), nn.Linear(8, 8), Quadratic(),
                         nn.Linear(8, 2))  # fmt: skip
    assert param_shapes(arch) == {k: tuple(v.shape) for k, v in user.state_dict().items()}
    assert list(param_shapes(arch)) == ["0.weight", "0.bias", "2.weight", "2.bias",
                                        "4.weight", "4.bias"]  # fmt: skip
    assert activation(arch) == "quadratic"
    assert Quadratic()(torch.tensor([-3.0])).item() == 9.0


def test_residual_and_batchnorm_numbering() -> None:
    arch = ArchitectureSchema().load(_mlp(hidden=[4, 4], residual=True, batchnorm=True))
    assert list(param_shapes(arch)) == [
        "0.weight", "0.bias", "1.weight", "1.bias",
        "3.0.weight", "3.0.bias", "3.1.weight", "3.1.bias",
        "4.weight", "4.bias",
    ]  # fmt: skip
    model = build_model(arch)
    assert isinstance(model[3], Residual)
    x = torch.randn(2, 4)
    assert torch.allclose(model[3](x), x + model[3][2](model[3][1](model[3][0](x))))


def test_init_params_seeded_and_default_distribution() -> None:
    arch = ArchitectureSchema().load(_mlp(hidden=[16], batchnorm=True))
    a = init_params(arch, 7, dtype=torch.float64)
    b = init_params(arch, 7, dtype=torch.float64)
    c = init_params(arch, 8, dtype=torch.float64)
    f32 = init_params(arch, 7, dtype=torch.float32)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["0.weight"], c["0.weight"])
    assert all(torch.equal(a[k].float(), f32[k]) for k in a)
    assert a["0.weight"].abs().max() <= 1 / 3**0.5
    assert a["3.weight"].abs().max() <= 1 / 16**0.5
    assert torch.equal(a["1.weight"], torch.ones(16, dtype=torch.float64))
    assert torch.equal(a["1.bias"], torch.zeros(16, dtype=torch.float64))


def test_package_import_does_not_import_torch() -> None:
    code = (
        "import landscope_service.modelspec, sys; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'safetensors.torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
