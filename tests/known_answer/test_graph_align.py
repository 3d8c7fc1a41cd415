"""Permutation alignment of graph models (Git Re-Basin permutation specs from the graph).

A copy of a network whose hidden units are permuted group by group computes the same
function; weight matching must find the permutation back, so the aligned linear path
between the two has barrier 0. Checked on a small ResNet with projection shortcuts
(channels through convs and batch norms, residual adds tying groups) and a transformer
encoder layer (heads permuted as wholes, the residual stream, the MLP hidden units).
"""

from __future__ import annotations

import json

import pytest
import torch
from graph_models import ResNet, Transformer
from torch import Tensor, nn

from landscope import from_module
from landscope_service.diagnostics import flatten
from landscope_service.diagnostics.connectivity.align import (
    _apply_spec,
    align_flat,
    alignment_groups,
    check_alignable,
)
from landscope_service.modelspec.build import build_problem
from landscope_service.modelspec.schemas import DataSchema, ModelSchema


def _problem(module: nn.Module, x: Tensor, y: Tensor):  # type: ignore[no-untyped-def]
    spec = from_module(module, x)
    blobs = {spec.weights_id: spec.weights}
    request = {
        "model": ModelSchema().load(json.loads(json.dumps(spec.model()))),
        "data": DataSchema().load({"inline": {"x": x.tolist(), "y": y.tolist()}}),
        "loss": "cross_entropy",
    }
    return build_problem(request, blobs.__getitem__, device=torch.device("cpu"),
                         dtype=torch.float64)


def _case(name: str) -> tuple[nn.Module, Tensor, Tensor]:
    torch.manual_seed(3)
    if name == "resnet":
        m: nn.Module = ResNet(n=1, width=4, classes=3, option="B", in_channels=2)
        for mod in m.modules():  # random affine values, the same running statistics
            if isinstance(mod, nn.BatchNorm2d):
                nn.init.uniform_(mod.weight, 0.5, 1.5)
                nn.init.normal_(mod.bias, 0.0, 0.1)
        x = torch.randn(5, 2, 8, 8)
    else:
        m = Transformer(vocab=7, d=8, heads=2, ff=12, length=4, classes=3, layers=1)
        x = torch.randint(0, 7, (5, 4))
    m = m.double().eval()
    return m, (x.double() if x.is_floating_point() else x), torch.randint(0, 3, (5,))


@pytest.mark.parametrize("name", ["resnet", "transformer"])
def test_permuted_copy_aligns_back_with_zero_barrier(name: str) -> None:
    module, x, y = _case(name)
    problem = _problem(module, x, y)
    groups = alignment_groups(problem.model)
    names = {g.name for g in groups}
    if name == "resnet":
        # the stem stream (conv1 + layer1's residual adds), each block's inner channels,
        # and each later stage's stream (its conv2 tied to the projection shortcut)
        assert names == {"conv1", "layer1.0.conv1", "layer2.0.conv1", "layer2.0.conv2",
                         "layer3.0.conv1", "layer3.0.conv2"}
    else:
        assert {"layers.0.attn.heads", "layers.0.ff1", "embed"} <= names
    params = problem.params
    gen = torch.Generator().manual_seed(0)
    perms = [torch.randperm(g.size, generator=gen) for g in groups]
    permuted = _apply_spec(dict(params), groups, perms)
    # the permuted copy computes the same function (the spec is a true symmetry)
    with torch.no_grad():
        out_a = problem.forward(params, problem.x)
        out_b = problem.forward(permuted, problem.x)
    torch.testing.assert_close(out_b, out_a, rtol=1e-12, atol=1e-12)
    theta_a = flatten(params)
    theta_b = flatten({k: permuted[k] for k in params})
    assert float((theta_a - theta_b).norm()) > 0.1 * float(theta_a.norm())

    aligned, _ = align_flat(problem.model, params, theta_a, theta_b, seed=1)
    assert float((aligned - theta_a).abs().max()) <= 1e-12
    # barrier of the aligned linear path: 0 (to 1e-12 relative)
    from landscope_service.diagnostics import unflatten

    la = float(problem.full_loss(unflatten(theta_a, params)))
    for t in torch.linspace(0, 1, 11, dtype=torch.float64):
        lt = float(problem.full_loss(unflatten((1 - t) * theta_a + t * aligned, params)))
        assert lt - la <= 1e-12 * abs(la)


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.tanh(self.fc1(x))
        return self.fc2(torch.cat([h, h * 2.0], dim=1))


def test_no_group_names_the_node_that_pins_the_channels() -> None:
    x = torch.randn(4, 3, dtype=torch.float64)
    problem = _problem(Concat().double(), x, torch.randint(0, 2, (4,)))
    with pytest.raises(TypeError, match=r"node 'cat' \(cat\)"):
        check_alignable(problem.model)


def test_non_uniform_running_statistics_pin_their_channels() -> None:
    module, x, y = _case("resnet")
    with torch.no_grad():
        module.bn1.running_var.copy_(torch.linspace(0.5, 1.5, 4, dtype=torch.float64))
    problem = _problem(module, x, y)
    names = {g.name for g in alignment_groups(problem.model)}
    assert "conv1" not in names and "layer1.0.conv1" in names


def test_align_on_a_graph_without_groups_is_a_422_naming_the_node() -> None:
    from marshmallow import ValidationError

    from landscope_service.jobs.kinds.base import SubmitContext
    from landscope_service.jobs.kinds.level_set_connectivity import check
    from landscope_service.modelspec.schemas import ArchitectureSchema

    spec = from_module(Concat(), torch.zeros(2, 3))
    arch = ArchitectureSchema().load(spec.architecture)
    ctx = SubmitContext(num_params=0, num_samples=4, input_dim=3, output_dim=2,
                        loss="cross_entropy", architecture=arch, param_shapes={},
                        check_weights=lambda ref: None)
    with pytest.raises(ValidationError) as info:
        check({"align": True}, ctx)
    assert "node 'cat' (cat)" in str(info.value.messages["align"])
    ok = ArchitectureSchema().load(from_module(ResNet(n=1, width=2, classes=3),
                                               torch.zeros(2, 3, 32, 32)).architecture)
    check({"align": True}, SubmitContext(num_params=0, num_samples=4, input_dim=3,
                                         output_dim=3, loss="cross_entropy", architecture=ok,
                                         param_shapes={}, check_weights=lambda ref: None))
