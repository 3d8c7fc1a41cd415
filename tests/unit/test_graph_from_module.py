"""SDK side of the graph architecture: from_module, refusals, name mapping, upload once."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from graph_models import ResNet
from torch import Tensor, nn

import landscope
from landscope import UnsupportedModuleError, from_module
from landscope._names import expected_names, map_state_dict
from landscope_service.modelspec.names import mapping_hint, propose_mapping
from landscope_service.modelspec.schemas import ArchitectureSchema
from landscope_service.modelspec.shapes import analyze
from landscope_service.modelspec.weights import check_weights


class InplaceAdd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x).add_(x)


class Blocks(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.layer2 = nn.Sequential(inner)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer2(x)


def test_unsupported_operation_says_where_what_and_how() -> None:
    with pytest.raises(UnsupportedModuleError) as info:
        from_module(Blocks(InplaceAdd()), torch.zeros(2, 3))
    err = info.value
    assert err.module_path == "layer2.0"
    assert ".add_()" in err.operation
    assert "x = x.add(y)" in str(err) and "Supported operations" in str(err)
    assert isinstance(err, landscope.LandscopeError)


class SeqFirst(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.attn(x, x, x)[0].mean(dim=1)


@pytest.mark.parametrize(
    ("module", "x", "needle"),
    [
        (nn.Sequential(nn.LSTM(3, 4)), torch.zeros(2, 5, 3), "nn.LSTM"),
        (nn.Sequential(nn.TransformerEncoderLayer(4, 2, batch_first=True), nn.Flatten(),
                       nn.Linear(20, 2)), torch.zeros(2, 5, 4), "nn.MultiheadAttention"),
        (nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3, track_running_stats=False)),
         torch.zeros(2, 3), "track_running_stats=True"),
        (SeqFirst(), torch.zeros(2, 5, 4), "batch_first=True"),
    ],
)
def test_unsupported_modules(module: nn.Module, x: Tensor, needle: str) -> None:
    with pytest.raises(UnsupportedModuleError, match=needle):
        from_module(module, x)


class MixesBatch(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(-1, 2)  # merges the batch into rows


class DataDependent(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        if x.sum() > 0:
            return x
        return -x


def test_batch_mixing_and_control_flow_are_refused() -> None:
    with pytest.raises(UnsupportedModuleError, match="batch"):
        from_module(MixesBatch(), torch.zeros(3, 4))
    with pytest.raises(UnsupportedModuleError, match=r"torch\.fx"):
        from_module(DataDependent(), torch.zeros(3, 4))


class InplaceReused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        return self.act(h) + h  # the in-place ReLU changed h for the user's module


def test_inplace_activation_overwriting_a_used_value_is_refused() -> None:
    with pytest.raises(UnsupportedModuleError, match="inplace=False"):
        from_module(InplaceReused(), torch.zeros(2, 3))


class Split(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 6)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.fc(x).chunk(2, dim=-1)
        h = torch.sigmoid(a) * b  # GLU
        h = h.unsqueeze(1)[:, 0, ..., :2]
        return torch.cat([h, 1 - h, h.mean(dim=1, keepdim=True)], dim=1) / 2.0


def test_chunk_slicing_scalars_and_cat() -> None:
    torch.manual_seed(0)
    m = Split().double()
    x = torch.randn(3, 4, dtype=torch.float64)
    spec = from_module(m, x)
    info = analyze(ArchitectureSchema().load(spec.architecture))
    from landscope_service.modelspec.build import build_model

    g = build_model(ArchitectureSchema().load(spec.architecture)).double()
    g.load_state_dict(m.state_dict())
    assert info.output_shape == (5,)
    torch.testing.assert_close(g(x), m(x), rtol=0, atol=0)


def test_dataparallel_is_unwrapped_and_unused_weights_left_out() -> None:
    class WithSpare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(3, 2)
            self.spare = nn.Linear(3, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.used(x)

    spec = from_module(nn.DataParallel(WithSpare()), torch.zeros(2, 3))
    assert spec.unused == ("spare.weight", "spare.bias")
    assert [n for n, _, _ in expected_names(spec)] == ["used.bias", "used.weight"]


def test_token_input_architecture() -> None:
    m = nn.Sequential(nn.Embedding(7, 4), nn.Flatten(), nn.Linear(12, 2))
    spec = from_module(m, torch.zeros(2, 3, dtype=torch.long))
    assert spec.architecture["input"] == {"name": "input_1", "shape": [3], "dtype": "int64"} or (
        spec.architecture["input"]["dtype"] == "int64")


# ---------------------------------------------------------------------------- names
class MyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3)
        self.bn2 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


SEQUENTIAL: dict[str, Any] = {
    "type": "sequential", "input_shape": [1, 8, 8], "layers": [
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "batchnorm"},
        {"type": "relu"},
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "batchnorm"},
        {"type": "relu"}, {"type": "flatten"}, {"type": "linear", "out_features": 3}]}


def test_mismatched_names_get_the_proposed_mapping_and_the_sdk_applies_it() -> None:
    from landscope._torch import state_dict_to_safetensors

    module = MyCNN()
    info = analyze(ArchitectureSchema().load(SEQUENTIAL))
    raw = state_dict_to_safetensors(module)
    with pytest.raises(ValueError) as err:
        check_weights(raw, info.param_shapes, buffer_shapes=info.buffer_shapes)
    msg = str(err.value)
    assert "'conv1.weight' -> '0.weight'" in msg and "'bn1.weight' -> '1.weight'" in msg
    assert "upload_state_dict(module, spec)" in msg

    renamed = map_state_dict(module, SEQUENTIAL)
    assert set(renamed) == set(info.param_shapes) | set(info.buffer_shapes)
    assert renamed["3.weight"] is module.state_dict()["conv2.weight"] or torch.equal(
        renamed["3.weight"], module.conv2.weight)
    check_weights(state_dict_to_safetensors(renamed), info.param_shapes,
                  buffer_shapes=info.buffer_shapes)


def test_dataparallel_prefix_and_checkpoint_messages() -> None:
    info = analyze(ArchitectureSchema().load(SEQUENTIAL))
    shapes = {**info.param_shapes}
    prefixed = {f"module.{k}": v for k, v in shapes.items()}
    hint = mapping_hint(prefixed, info.param_shapes, info.buffer_shapes)
    assert hint is not None and "module.state_dict()" in hint
    ckpt = {**{f"state_dict.{k}": v for k, v in shapes.items()}, "epoch": ()}
    hint = mapping_hint(ckpt, info.param_shapes, info.buffer_shapes)
    assert hint is not None and "checkpoint['state_dict']" in hint
    with pytest.raises(ValueError, match="checkpoint"):
        map_state_dict({"state_dict": {"a": torch.zeros(1)}}, SEQUENTIAL)
    dp = nn.DataParallel(MyCNN())
    assert set(map_state_dict(dp.state_dict(), SEQUENTIAL)) == set(info.param_shapes) | set(
        info.buffer_shapes)


def test_no_proposal_when_shapes_do_not_pair() -> None:
    present = {"a.weight": (3, 2), "b.weight": (3, 2)}
    expected = {"0.weight": (3, 2), "1.weight": (2, 3)}
    assert propose_mapping(present, expected) is None
    assert mapping_hint(present, expected) is None


@pytest.mark.parametrize("hidden", [[], [5], [4, 4, 4]])
@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("residual", [False, True])
def test_sdk_mlp_names_equal_the_services(hidden: list[int], batchnorm: bool,
                                          residual: bool) -> None:
    arch = landscope.mlp(3, hidden, 2, "tanh", residual=residual, batchnorm=batchnorm)
    info = analyze(ArchitectureSchema().load(arch))
    sdk = {n: s for n, s, _ in expected_names(arch)}
    assert sdk == {**info.param_shapes, **info.buffer_shapes}


def test_graph_names_equal_the_services() -> None:
    spec = from_module(ResNet(n=1, width=2, classes=3), torch.zeros(2, 3, 32, 32))
    info = analyze(ArchitectureSchema().load(json.loads(json.dumps(spec.architecture))))
    names = [n for n, _, _ in landscope._names._graph(spec.architecture)]
    assert set(names) == set(info.param_shapes) | set(info.buffer_shapes)


def test_sorted_safetensors_without_order_get_no_guess() -> None:
    """Names stored sorted say nothing about the module's order: no pairing is guessed."""
    from safetensors.torch import save

    module = MyCNN()
    info = analyze(ArchitectureSchema().load(SEQUENTIAL))
    raw = save({k: v.contiguous() for k, v in module.state_dict().items()})
    with pytest.raises(ValueError) as err:
        check_weights(raw, info.param_shapes, buffer_shapes=info.buffer_shapes)
    assert "does not record the module's order" in str(err.value)
    assert "->" not in str(err.value)
