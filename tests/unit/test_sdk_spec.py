"""Job request building, evaluate types, and the torch helpers of the SDK."""

from __future__ import annotations

import json
import sys

import fakeapi as fk
import pytest
from liveapi import LiveAPI, LiveClock, live_client

import landscope
from landscope import (
    Blob,
    EvaluateOptions,
    EvaluateResult,
    JobRequest,
    blob_data,
    inline_data,
    mlp,
    model,
    state_dict_to_safetensors,
    synthetic_data,
)


def test_job_request_to_json_matches_the_contract() -> None:
    request = JobRequest(
        kind="evaluate",
        model=model(mlp(3, [8, 8], 1, "tanh"), weights=Blob("sha256:ab", 10)),
        data=inline_data([[0.1, 0.2, 0.3]], [[1.0]]),
        loss="mse",
        options=EvaluateOptions(),
        dtype="float64",
        seed=3,
        metadata={"run": "abc"},
    )
    assert request.to_json() == {
        "kind": "evaluate",
        "model": {
            "architecture": {
                "type": "mlp",
                "input_dim": 3,
                "hidden": [8, 8],
                "output_dim": 1,
                "activation": "tanh",
                "bias": True,
            },
            "weights": "sha256:ab",
        },
        "data": {"inline": {"x": [[0.1, 0.2, 0.3]], "y": [[1.0]]}},
        "loss": "mse",
        "options": {},
        "device": "auto",
        "dtype": "float64",
        "seed": 3,
        "metadata": {"run": "abc"},
    }
    with_batch = JobRequest(
        kind="hessian_spectrum",
        model=model(mlp(2, [], 1), init_seed=1),
        data=synthetic_data("teacher_student", 64, seed=2, noise=0.1),
        options={"top_k": 5},
        batch_size=16,
    ).to_json()
    assert with_batch["batch_size"] == 16
    assert with_batch["options"] == {"top_k": 5}
    assert with_batch["model"]["init_seed"] == 1
    assert with_batch["data"] == {
        "synthetic": {"name": "teacher_student", "num_samples": 64, "seed": 2, "noise": 0.1}
    }
    json.dumps(with_batch)


def test_builders_validate() -> None:
    with pytest.raises(ValueError, match="positive integers"):
        mlp(3, [0], 1)
    with pytest.raises(ValueError, match="either weights or init_seed"):
        model(mlp(1, [], 1), weights="sha256:a", init_seed=0)
    with pytest.raises(ValueError, match="same number of rows"):
        inline_data([[1.0], [2.0]], [[1.0]])
    with pytest.raises(TypeError, match="sequence of rows"):
        inline_data(3, [1])
    assert mlp(2, [4], 1, residual=True, batchnorm=True)["residual"] is True
    assert blob_data("sha256:x", "csv") == {"blob": "sha256:x", "format": "csv"}


def test_inline_data_accepts_arrays() -> None:
    np = pytest.importorskip("numpy")
    data = inline_data(np.array([[1.0, 2.0]]), np.array([0]))
    assert data == {"inline": {"x": [[1.0, 2.0]], "y": [0]}}
    assert json.dumps(data)


def test_request_submits_through_the_client(live_api: LiveAPI, live_clock: LiveClock) -> None:
    client = live_client(live_api, live_clock)
    request = JobRequest(
        kind="evaluate",
        model=model(mlp(2, [3], 1)),
        data=synthetic_data("teacher_student", 8),
    )
    job = client.jobs.submit(request)
    assert job.status == "queued"  # the real API accepted the builders' JSON as it is
    assert json.loads(live_api.calls("POST", "/v1/jobs")[0].body) == request.to_json()
    stored = live_api.get(job.id)["request"]
    assert stored["kind"] == "evaluate"
    assert stored["model"]["architecture"].items() >= {
        "type": "mlp", "input_dim": 2, "hidden": [3], "output_dim": 1
    }.items()


def test_evaluate_options() -> None:
    assert EvaluateOptions().to_json() == {}
    assert EvaluateOptions(stationary_tol=1e-8).to_json() == {"stationary_tol": 1e-8}
    with pytest.raises(ValueError, match="stationary_tol"):
        EvaluateOptions(stationary_tol=0.0)


def test_evaluate_result_from_json() -> None:
    result = EvaluateResult.from_json(fk.EVALUATE_RESULT)
    assert result.grad_norm == 1.5
    assert result.num_samples == 16
    assert result.per_sample_loss.min == 0.01
    with pytest.raises(landscope.InvalidResponseError, match="num_params"):
        EvaluateResult.from_json({**fk.EVALUATE_RESULT, "num_params": 1.5})
    with pytest.raises(landscope.InvalidResponseError, match="per_sample_loss"):
        EvaluateResult.from_json({**fk.EVALUATE_RESULT, "per_sample_loss": None})


def test_state_dict_to_safetensors_round_trips() -> None:
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    extra = {
        "half": torch.arange(6, dtype=torch.float16).reshape(2, 3),
        "bf": torch.ones(2, dtype=torch.bfloat16),
        "flags": torch.tensor([True, False]),
        "scalar": torch.tensor(2.5, dtype=torch.float64),
        "view": torch.arange(12.0).reshape(3, 4)[:, 1],
    }
    state = {**net.state_dict(), **extra}
    raw = state_dict_to_safetensors(state, metadata={"format": "pt"})
    loaded = safetensors_torch.load(raw)
    assert sorted(loaded) == sorted(state)
    for name, tensor in state.items():
        assert loaded[name].dtype == tensor.dtype
        assert torch.equal(loaded[name], tensor)
    assert state_dict_to_safetensors(net) == state_dict_to_safetensors(net.state_dict())
    header_len = int.from_bytes(raw[:8], "little")
    assert header_len % 8 == 0
    with pytest.raises(TypeError, match="not a tensor"):
        state_dict_to_safetensors({"w": [1.0]})
    with pytest.raises(ValueError, match="complex64"):
        state_dict_to_safetensors({"w": torch.zeros(1, dtype=torch.complex64)})


def test_upload_state_dict(live_api: LiveAPI, live_clock: LiveClock) -> None:
    torch = pytest.importorskip("torch")
    client = live_client(live_api, live_clock)
    state = {"0.weight": torch.ones(2, 3), "0.bias": torch.zeros(2)}
    blob = client.blobs.upload_state_dict(state)
    stored = live_api.services.blobs.read("tenant-a", blob.id)
    assert stored == state_dict_to_safetensors(state)


def test_torch_helpers_explain_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install landscope\[torch\]"):
        state_dict_to_safetensors({})
