"""Options that cannot work are refused at submit time, per kind: 422 naming the field,
nothing queued. Real app, real (private) Redis, no worker."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save

from landscope_service.jobs.registry import public_kinds

from support import AUTH_A

BASE: dict[str, Any] = {
    "model": {"architecture": {"type": "mlp", "input_dim": 3, "hidden": [8],
                               "output_dim": 1, "activation": "tanh", "bias": True},
              "init_seed": 0},
    "data": {"synthetic": {"name": "teacher_student", "num_samples": 10, "seed": 0}},
    "loss": "mse",
}  # P = 3*8 + 8 + 8 + 1 = 41


def _req(kind: str, options: dict[str, Any], **top: Any) -> dict[str, Any]:
    req = copy.deepcopy(BASE)
    req.update(kind=kind, options=options, **top)
    return req


CASES = [
    ("hessian: k larger than P", _req("hessian_spectrum", {"top_k": 50}), ["options"]),
    ("hessian: negative tolerance", _req("hessian_spectrum", {"tol": -1e-6}),
     ["options", "tol"]),
    ("hessian: density grid without points",
     _req("hessian_spectrum", {"density_grid_points": 0}), ["options", "density_grid_points"]),
    ("hessian: non-strict integer", _req("hessian_spectrum", {"top_k": 2.5}),
     ["options", "top_k"]),
    ("manifold: non-squared loss",
     _req("minimizer_manifold", {}, loss="cross_entropy",
          model={**BASE["model"], "architecture": {**BASE["model"]["architecture"],
                                                   "output_dim": 2}}),
     ["loss"]),
    ("manifold: K < 0", _req("minimizer_manifold", {"walk_steps": -1}),
     ["options", "walk_steps"]),
    ("connectivity: M < 2", _req("level_set_connectivity", {"num_trained": 1}),
     ["options", "num_trained"]),
    ("connectivity: empty lambda grid", _req("level_set_connectivity", {"lambda_grid": []}),
     ["options", "lambda_grid"]),
    # strict types, in every kind's options (one strict base schema)
    ("strict boolean", _req("hessian_spectrum", {"trace": "yes"}), ["options", "trace"]),
    ("strict number", _req("hessian_spectrum", {"tol": "1e-6"}), ["options", "tol"]),
    ("strict integer, not a boolean", _req("hessian_spectrum", {"top_k": True}),
     ["options", "top_k"]),
    ("strict nested number", _req("level_set_connectivity", {"train": {"lr": "0.1"}}),
     ["options", "train", "lr"]),
    ("strict nested boolean", _req("level_set_connectivity", {"paths": {"neb": {"climb": 1}}}),
     ["options", "paths", "neb", "climb"]),
    ("strict evaluate number", _req("evaluate", {"stationary_tol": "1e-6"}),
     ["options", "stationary_tol"]),
    ("manifold: strict boolean", _req("minimizer_manifold", {"control_step": "false"}),
     ["options", "control_step"]),
    ("exclusive bound", _req("evaluate", {"stationary_tol": 0}), ["options", "stationary_tol"]),
    ("hessian: density_sigma_scale > 0", _req("hessian_spectrum", {"density_sigma_scale": 0}),
     ["options", "density_sigma_scale"]),
    ("hessian: cross-field rule", _req("hessian_spectrum", {"max_basis": 6}),
     ["options", "max_basis"]),
    ("connectivity: nested rule", _req("level_set_connectivity",
                                       {"paths": {"neb": {"images": 10, "max_pivots": 5}}}),
     ["options", "paths", "neb", "max_pivots"]),
    ("connectivity: unknown minimum blob",
     _req("level_set_connectivity", {"minima": ["sha256:" + "1" * 64]}), ["options", "minima"]),
]


@pytest.mark.parametrize(("name", "body", "path"), CASES, ids=[c[0] for c in CASES])
def test_bad_kind_options(http: Any, redis_client: Any, name: str, body: dict[str, Any],
                          path: list[str]) -> None:
    resp = http.post("/v1/jobs", json=body, headers=AUTH_A)
    assert resp.status_code == 422, resp.get_json()
    assert resp.mimetype == "application/problem+json"
    node = resp.get_json()["errors"]
    for key in path:
        assert key in node, (path, resp.get_json())
        node = node[key]
    assert redis_client.llen("cpu") == 0


def test_connectivity_minima_that_do_not_match_the_spec(http: Any, redis_client: Any) -> None:
    wrong = save({"0.weight": np.zeros((8, 4), np.float32), "0.bias": np.zeros(8, np.float32),
                  "2.weight": np.zeros((1, 8), np.float32), "2.bias": np.zeros(1, np.float32)})
    blob = http.post("/v1/blobs", data=wrong, headers=AUTH_A).get_json()["id"]
    resp = http.post("/v1/jobs", json=_req("level_set_connectivity", {"minima": [blob]}),
                     headers=AUTH_A)
    assert resp.status_code == 422
    assert "0.weight" in str(resp.get_json()["errors"]["options"]["minima"])
    assert redis_client.llen("cpu") == 0


@pytest.mark.parametrize("kind", list(public_kinds()))
def test_defaults_are_accepted(http: Any, kind: str) -> None:
    resp = http.post("/v1/jobs", json=_req(kind, {}), headers=AUTH_A)
    assert resp.status_code == 202, resp.get_json()
    stored = resp.get_json()["request"]["options"]
    assert stored, "the stored request carries every option with its default"
