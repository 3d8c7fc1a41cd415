"""Round trips: user module -> from_module -> the service's checks, build and ``evaluate``.

Each network is traced by the SDK, validated and built by the service from the JSON
alone, and evaluated in float64; the loss and every gradient entry must equal the
user's own module to 1e-12 relative, and the state_dict keys must be the user's, in
the user's order. Widths and sample counts are tiny so each case runs in well under a
second.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from graph_models import VGG, ResNet, Reuse, Transformer, randomize_bn
from torch import nn

from landscope import from_module
from landscope_service.diagnostics.evaluate import evaluate
from landscope_service.modelspec.build import build_problem
from landscope_service.modelspec.facts import submit_context
from landscope_service.modelspec.schemas import DataSchema, ModelSchema

RTOL = 1e-12


def _case(name: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    if name == "resnet20_projection":
        m: nn.Module = ResNet(n=3, width=4, classes=5, option="B")
        x = torch.randn(4, 3, 32, 32)
    elif name == "resnet20_option_a":
        m = ResNet(n=3, width=4, classes=5, option="A")
        x = torch.randn(4, 3, 32, 32)
    elif name == "vgg11_bn_dropout":
        m = VGG(width=2, classes=5)
        x = torch.randn(4, 3, 32, 32)
    elif name == "transformer_tokens":
        m = Transformer(vocab=11, d=8, heads=2, ff=16, length=5, classes=5)
        x = torch.randint(0, 11, (6, 5))
    else:
        m = Reuse(d_in=4, d=6, classes=5)
        x = torch.randn(6, 4)
    m = randomize_bn(m.double()).eval()
    if x.is_floating_point():
        x = x.double()
    y = torch.randint(0, 5, (x.shape[0],))
    return m, x, y


def _service_problem(spec: Any, x: torch.Tensor, y: torch.Tensor) -> Any:
    blobs = {spec.weights_id: spec.weights}
    model = ModelSchema().load(json.loads(json.dumps(spec.model())))
    data = DataSchema().load({"inline": {"x": x.tolist(), "y": y.tolist()}})
    request = {"kind": "evaluate", "model": model, "data": data, "loss": "cross_entropy",
               "dtype": "float64"}
    submit_context(request, blobs.__getitem__)
    return build_problem(request, blobs.__getitem__, device=torch.device("cpu"),
                         dtype=torch.float64)


CASES = ["resnet20_projection", "resnet20_option_a", "vgg11_bn_dropout", "transformer_tokens",
         "reused_layer"]


@pytest.mark.parametrize("name", CASES)
def test_round_trip_matches_the_users_module(name: str) -> None:
    module, x, y = _case(name)
    spec = from_module(module, x)
    problem = _service_problem(spec, x, y)

    # the same keys, in the same order
    assert list(problem.model.state_dict()) == list(module.state_dict())
    assert list(problem.params) == [k for k, _ in module.named_parameters()]

    # the same outputs and loss
    with torch.no_grad():
        ref_out = module(x)
        out = problem.forward(problem.params, problem.x)
    torch.testing.assert_close(out, ref_out, rtol=RTOL, atol=0.0)
    ref_loss = F.cross_entropy(module(x), y)
    ref_value = float(ref_loss.detach())
    result = evaluate(problem)
    assert abs(result["loss"] - ref_value) <= RTOL * abs(ref_value)

    # the same float64 gradient
    ref_grads = torch.autograd.grad(ref_loss, [p for _, p in module.named_parameters()])
    grads = torch.func.grad(problem.loss_fn)(problem.params, problem.x, problem.y)
    for (key, _), ref in zip(module.named_parameters(), ref_grads, strict=True):
        err = float((grads[key] - ref).norm())
        assert err <= RTOL * max(float(ref.norm()), 1e-300), (key, err, float(ref.norm()))
    ref_norm = float(torch.sqrt(sum((g**2).sum() for g in ref_grads)))
    assert abs(result["grad_norm"] - ref_norm) <= RTOL * ref_norm


def test_resnet20_has_the_papers_shape() -> None:
    """ResNet-20: 19 convolutions + 1 linear, 0.27M parameters at width 16 (He et al.).

    269,722 counts batch-norm scales and shifts, with option-A (parameter-free) shortcuts.
    """
    module = ResNet(n=3, width=16, classes=10, option="A")
    spec = from_module(module, torch.zeros(2, 3, 32, 32))
    ops = [n["op"] for n in spec.architecture["nodes"]]
    assert ops.count("conv2d") == 19 and ops.count("linear") == 1
    assert sum(p.numel() for p in module.parameters()) == 269_722


def test_a_deep_copy_uses_its_own_parameters() -> None:
    """copy.deepcopy of a graph module (the manifold Jacobian copies the model) runs on
    the copy's parameters, in the copy's dtype."""
    import copy

    module, x, y = _case("transformer_tokens")
    problem = _service_problem(from_module(module, x), x, y)
    twin = copy.deepcopy(problem.model).float()
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.5)
        out = twin(x)
        ref = problem.model(x)
    assert out.dtype == torch.float32 and ref.dtype == torch.float64
    assert float((out.double() - ref).abs().max()) > 1e-3
    with torch.no_grad():
        back = torch.func.functional_call(twin, {k: v.float() for k, v in problem.params.items()},
                                          (x,))
    torch.testing.assert_close(back.double(), ref, rtol=1e-5, atol=1e-5)
