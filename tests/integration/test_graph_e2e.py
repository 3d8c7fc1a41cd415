"""Bring your own network, end to end: from_module -> real HTTP API -> Celery worker.

The SDK traces a small ResNet, the client uploads its weights once (content-addressed)
and the worker builds the network from the JSON alone; evaluate must reproduce the
module's own loss in float64, hessian_spectrum reports per-layer blocks under the
module's paths, and a hostile graph is a 422 naming the node.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from graph_models import ResNet, randomize_bn

import landscope

pytestmark = pytest.mark.integration


def _resnet() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    module = randomize_bn(ResNet(n=1, width=2, classes=3, option="A", in_channels=1).double())
    module.eval()
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 3, (6,))
    return module, x, y


def test_from_module_evaluate_and_blocks(client_a: landscope.Client,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    module, x, y = _resnet()
    spec = landscope.from_module(module, x)
    uploads: list[int] = []
    real_upload = client_a.blobs.upload

    def counting(source: Any) -> landscope.Blob:
        uploads.append(1)
        return real_upload(source)

    monkeypatch.setattr(client_a.blobs, "upload", counting)
    request = landscope.JobRequest(
        kind="evaluate", model=spec, data=landscope.inline_data(x, y),
        loss="cross_entropy", dtype="float64",
    )
    job = client_a.jobs.submit(request)
    again = client_a.jobs.submit(request)
    assert len(uploads) == 1  # the second submit finds the weights by their hash
    result = client_a.jobs.result(job, timeout=300)
    with torch.no_grad():
        want = float(F.cross_entropy(module(x), y))
    assert abs(result.loss - want) <= 1e-12 * want
    assert client_a.jobs.result(again, timeout=300).loss == result.loss

    hess = client_a.jobs.submit(landscope.JobRequest(
        kind="hessian_spectrum", model=spec, data=landscope.inline_data(x, y),
        loss="cross_entropy", dtype="float64",
        options={"top_k": 1, "bottom_k": 0, "blocks": True, "density_probes": 2,
                 "density_steps": 8},
    ))
    done = client_a.jobs.wait(hess, timeout=300)
    assert done.status == "succeeded", done.error
    assert done.result is not None
    blocks = [b["name"] for b in done.result["blocks"]]
    want_blocks = list(dict.fromkeys(k.rpartition(".")[0] for k, _ in module.named_parameters()))
    assert blocks == want_blocks


def test_hostile_graph_is_a_422_naming_the_node(client_a: landscope.Client) -> None:
    module, x, y = _resnet()
    spec = landscope.from_module(module, x)
    arch = dict(spec.architecture)
    nodes = [dict(n) for n in arch["nodes"]]
    nodes[0]["inputs"] = [nodes[3]["name"]]  # a cycle through the stem
    arch["nodes"] = nodes
    request = landscope.JobRequest(
        kind="evaluate", model=landscope.model(arch, init_seed=0),
        data=landscope.inline_data(x, y), loss="cross_entropy",
    )
    with pytest.raises(landscope.UnprocessableEntityError) as info:
        client_a.jobs.submit(request)
    assert "cycle" in str(info.value) and repr(nodes[0]["name"]) in str(info.value)


def test_token_ids_out_of_range_are_a_422(client_a: landscope.Client) -> None:
    module = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Flatten(),
                                 torch.nn.Linear(6, 2))
    x = torch.tensor([[0, 4], [1, 7]])
    spec = landscope.from_module(module, torch.zeros(2, 2, dtype=torch.long))
    request = landscope.JobRequest(kind="evaluate", model=spec,
                                   data=landscope.inline_data(x, [0, 1]),
                                   loss="cross_entropy")
    with pytest.raises(landscope.UnprocessableEntityError) as info:
        client_a.jobs.submit(request)
    assert "Token id 7" in str(info.value) and "[0, 5)" in str(info.value)
