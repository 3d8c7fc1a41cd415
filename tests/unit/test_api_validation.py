"""Bad input, table-driven: each answer is a 4xx problem+json naming the field, and no
job reaches the queue. Uses the real app and a real (private) Redis, no worker."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest

from support import AUTH_A

GOOD: dict[str, Any] = {
    "kind": "evaluate",
    "model": {"architecture": {"type": "mlp", "input_dim": 3, "hidden": [8],
                               "output_dim": 1, "activation": "tanh", "bias": True},
              "init_seed": 0},
    "data": {"inline": {"x": [[0.1, 0.2, 0.3], [0.0, 1.0, -1.0]], "y": [[1.0], [0.0]]}},
    "loss": "mse",
}


def _with(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    req = json.loads(json.dumps(base or GOOD))
    node = req
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return req


_DELETE = object()
CE = _with("loss", "cross_entropy", _with("model.architecture.output_dim", 3))

CASES = [
    # (name, body, expected status, field path that must appear in errors)
    ("unknown top-level field", _with("colour", "red"), 422, ["colour"]),
    ("unknown kind", _with("kind", "telepathy"), 422, ["kind"]),
    ("missing model", _with("model", _DELETE), 422, ["model"]),
    ("wrong type", _with("seed", "zero"), 422, ["seed"]),
    ("non-strict integer", _with("seed", 2.5), 422, ["seed"]),
    ("integer as float string", _with("batch_size", "4"), 422, ["batch_size"]),
    ("unknown loss", _with("loss", "hinge"), 422, ["loss"]),
    ("unknown device", _with("device", "tpu"), 422, ["device"]),
    ("bad width", _with("model.architecture.hidden", [8, 0]), 422, ["model", "architecture"]),
    ("unknown activation", _with("model.architecture.activation", "swishy"), 422,
     ["model", "architecture"]),
    ("x shape mismatch", _with("data.inline.x", [[0.1, 0.2], [0.3, 0.4]]), 422, ["data"]),
    ("y rows mismatch", _with("data.inline.y", [[1.0]]), 422, ["data"]),
    ("non-finite value", _with("data.inline.x", [[0.1, 0.2, "NaN"], [0.0, 1.0, -1.0]]), 422,
     ["data"]),
    ("label out of range", _with("data.inline.y", [0, 7], CE), 422, ["data"]),
    ("unknown weights blob", _with("model.weights", "sha256:" + "0" * 64,
                                   _with("model.init_seed", _DELETE)), 422, ["model"]),
    ("unknown option", _with("options", {"top_secret": 1}), 422, ["options"]),
    ("bad option value", _with("options", {"stationary_tol": -1.0}), 422, ["options"]),
    ("too much metadata", _with("metadata", {f"k{i}": "v" for i in range(17)}), 422,
     ["metadata"]),
    ("metadata value too long", _with("metadata", {"k": "v" * 513}), 422, ["metadata"]),
    ("non-string metadata", _with("metadata", {"k": 1}), 422, ["metadata"]),
]


def _assert_problem(resp: Any, status: int, path: list[str]) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["status"] == status and body["code"] and body["detail"]
    node = body.get("errors", {})
    for key in path:
        assert key in node, (path, body)
        node = node[key]
    return body


@pytest.mark.parametrize(("name", "body", "status", "path"), CASES, ids=[c[0] for c in CASES])
def test_bad_job_requests(http: Any, redis_client: Any, name: str, body: dict[str, Any],
                          status: int, path: list[str]) -> None:
    resp = http.post("/v1/jobs", json=body, headers=AUTH_A)
    _assert_problem(resp, status, path)
    assert redis_client.llen("cpu") == 0 and redis_client.llen("gpu") == 0
    assert redis_client.zcard("ls:tenant:tenant-a:jobs") == 0


def test_good_request_is_accepted(http: Any, redis_client: Any) -> None:
    resp = http.post("/v1/jobs", json=GOOD, headers=AUTH_A)
    assert resp.status_code == 202, resp.get_json()
    assert redis_client.llen("cpu") == 1


def test_malformed_json(http: Any, redis_client: Any) -> None:
    resp = http.post("/v1/jobs", data=b"{not json", headers={**AUTH_A,
                                                            "Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.mimetype == "application/problem+json"
    assert "json" in resp.get_json()["detail"].lower()
    assert redis_client.llen("cpu") == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"},
                                     {"Authorization": "Basic a2V5LWE="}])
def test_missing_or_invalid_key(http: Any, headers: dict[str, str]) -> None:
    resp = http.post("/v1/jobs", json=GOOD, headers=headers)
    assert resp.status_code == 401 and resp.mimetype == "application/problem+json"
    assert "WWW-Authenticate" in resp.headers


def test_oversize_bodies(http: Any, redis_client: Any) -> None:
    big = _with("data.inline.x", [[0.1, 0.2, 0.3]] * 100000)  # > 1 MiB JSON limit
    resp = http.post("/v1/jobs", json=big, headers=AUTH_A)
    assert resp.status_code == 413 and resp.mimetype == "application/problem+json"
    resp = http.post("/v1/blobs", data=b"x" * (3 * 1024 * 1024), headers=AUTH_A)
    assert resp.status_code == 413
    assert redis_client.llen("cpu") == 0


def test_weights_that_do_not_match(http: Any) -> None:
    from safetensors.numpy import save

    data = save({"0.weight": np.zeros((8, 4), np.float32), "0.bias": np.zeros(8, np.float32),
                 "2.weight": np.zeros((1, 8), np.float32), "2.bias": np.zeros(1, np.float32)})
    blob = http.post("/v1/blobs", data=data, headers=AUTH_A).get_json()
    req = _with("model.weights", blob["id"], _with("model.init_seed", _DELETE))
    body = _assert_problem(http.post("/v1/jobs", json=req, headers=AUTH_A), 422,
                           ["model", "weights"])
    assert "0.weight" in json.dumps(body["errors"])


def test_data_blob_npz(http: Any, redis_client: Any) -> None:
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((5, 3)), y=np.zeros((5, 1)))
    blob = http.post("/v1/blobs", data=buf.getvalue(), headers=AUTH_A).get_json()
    ok = _with("data", {"blob": blob["id"], "format": "npz"})
    assert http.post("/v1/jobs", json=ok, headers=AUTH_A).status_code == 202
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((5, 4)), y=np.zeros((5, 1)))
    blob = http.post("/v1/blobs", data=buf.getvalue(), headers=AUTH_A).get_json()
    bad = _with("data", {"blob": blob["id"], "format": "npz"})
    _assert_problem(http.post("/v1/jobs", json=bad, headers=AUTH_A), 422, ["data"])


def test_unknown_routes_and_methods(http: Any) -> None:
    resp = http.get("/v1/nothing", headers=AUTH_A)
    assert resp.status_code == 404 and resp.mimetype == "application/problem+json"
    resp = http.delete("/v1/jobs", headers=AUTH_A)
    assert resp.status_code == 405 and "Allow" in resp.headers
    resp = http.get("/v1/jobs/job_doesnotexist", headers=AUTH_A)
    assert resp.status_code == 404


def test_list_rejects_unknown_query(http: Any) -> None:
    resp = http.get("/v1/jobs?colour=red", headers=AUTH_A)
    _assert_problem(resp, 422, ["colour"])
    resp = http.get("/v1/jobs?limit=0", headers=AUTH_A)
    _assert_problem(resp, 422, ["limit"])
