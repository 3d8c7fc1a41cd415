"""Submit-time checks of ``landscape_slice`` (no torch, no Redis): the options schema,
the cross-field conditions, weight blobs and the resolution of ``path_job``."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError

from landscope_service.jobs.kinds.base import SubmitContext
from landscope_service.jobs.kinds.landscape_slice import KIND, check

JOBS: dict[str, dict[str, Any]] = {
    "job_conn": {"kind": "level_set_connectivity", "status": "succeeded",
                 "result": {"minima": [{"blob": "sha256:a"}, {"blob": "sha256:b"},
                                       {"blob": None, "source": "trained"}]}},
    "job_running": {"kind": "level_set_connectivity", "status": "running", "result": None},
    "job_eval": {"kind": "evaluate", "status": "succeeded", "result": {}},
}


def _ctx(loss: str = "cross_entropy", bad_blobs: tuple[str, ...] = ()) -> SubmitContext:
    def check_weights(ref: str) -> None:
        if ref in bad_blobs:
            raise ValueError(f"Weights {ref}: shape mismatch for 0.weight.")

    return SubmitContext(num_params=10, num_samples=8, input_dim=2, output_dim=3, loss=loss,
                         architecture={}, param_shapes={}, check_weights=check_weights,
                         get_job=JOBS.get)


def _check(options: dict[str, Any], ctx: SubmitContext | None = None) -> dict[str, Any]:
    opts = KIND.options_schema().load(options)
    try:
        check(opts, ctx or _ctx())
    except ValidationError as e:
        return {"errors": e.messages, "options": opts}
    return {"errors": {}, "options": opts}


@pytest.mark.parametrize(("options", "field", "words"), [
    ({"range": [[1, 1]]}, "range", "empty"),
    ({"range": [[-1, 1], [3, 2]]}, "range", "beta is empty"),
    ({"dims": 1, "range": [[-1, 1], [-1, 1]]}, "range", "one [low, high] per axis"),
    ({"resolution": [202, 3]}, "resolution", "201"),
    ({"dims": 1, "resolution": [3, 3]}, "resolution", "one per axis"),
    ({"directions": "minima"}, "minima", "Required"),
    ({"directions": "given", "direction_blobs": ["x"]}, "direction_blobs", "2 blob"),
    ({"directions": "trajectory_pca", "checkpoints": ["x", "y"]}, "checkpoints", "at least 3"),
    ({"directions": "path", "pair": [0, 1]}, "path_job", "Required"),
    ({"directions": "path", "path_job": "job_conn"}, "pair", "Required"),
    ({"directions": "path", "path_job": "job_other", "pair": [0, 1]}, "path_job", "No job"),
    ({"directions": "path", "path_job": "job_running", "pair": [0, 1]}, "path_job",
     "running"),
    ({"directions": "path", "path_job": "job_eval", "pair": [0, 1]}, "path_job", "evaluate"),
    ({"directions": "path", "path_job": "job_conn", "pair": [0, 3]}, "pair", "between 0 and 2"),
    ({"directions": "path", "path_job": "job_conn", "pair": [1, 1]}, "pair", "different"),
    ({"directions": "path", "path_job": "job_conn", "pair": [0, 2]}, "pair", "trained"),
])
def test_bad_options_name_the_field(options: dict[str, Any], field: str, words: str) -> None:
    errors = _check(options)["errors"]
    assert field in errors, errors
    assert words in str(errors[field])


def test_path_resolves_to_the_pairs_blobs_and_ignores_a_callers_path_points() -> None:
    out = _check({"dims": 1, "directions": "path", "path_job": "job_conn", "pair": [1, 0],
                  "path_points": ["sha256:mine", "sha256:yours"]})
    assert out["errors"] == {}
    assert out["options"]["path_points"] == ["sha256:b", "sha256:a"]


def test_blobs_are_checked_against_the_architecture() -> None:
    errors = _check({"directions": "minima", "minima": ["sha256:ok", "sha256:bad"]},
                    _ctx(bad_blobs=("sha256:bad",)))["errors"]
    assert list(errors["minima"]) == [1] and "0.weight" in errors["minima"][1][0]


def test_accuracy_needs_cross_entropy() -> None:
    assert "accuracy" in _check({"accuracy": True}, _ctx(loss="mse"))["errors"]
    assert _check({"accuracy": True})["errors"] == {}


def test_schema_types_and_bounds() -> None:
    schema = KIND.options_schema()
    for bad in ({"resolution": [0]}, {"resolution": [402]}, {"dims": 3},
                {"range": "-1,1"}, {"range": [-1, 1]}, {"range": [[-1, 1, 2]]},
                {"range": [[-1, 1]] * 3}, {"range": [[-1, 2e6]]},
                {"directions": "pca"}, {"convexity": True, "dims": 1},
                {"colour": 1}):
        with pytest.raises(ValidationError):
            schema.load(bad)
    assert schema.load({})["resolution"] is None  # 51 per axis, resolved by the runner
    assert schema.load({"range": [[-1, 1], [-2, 2]]})["range"] == [[-1.0, 1.0], [-2.0, 2.0]]


def test_any_json_options_give_a_422_or_pass_never_another_error() -> None:
    """Random option objects (valid and invalid shapes) through the schema and the check:
    the only failure is a ValidationError (a 422), never an exception (a 500)."""
    import random

    rng = random.Random(0)
    names = [*KIND.options.fields, "unknown"]
    atoms: list[Any] = [None, True, 0, 1, 2, 3, -1, 401, 10**19, 0.5, -1e7, "", "x",
                        "path", "minima", "given", "trajectory_pca", "hessian_top",
                        "job_conn", "job_running", "sha256:bad", [], {}]

    def value(depth: int = 0) -> Any:
        r = rng.random()
        if depth < 2 and r < 0.3:
            return [value(depth + 1) for _ in range(rng.randrange(0, 4))]
        if depth < 1 and r < 0.35:
            return {rng.choice(["tol", "max_products", "x"]): value(depth + 1)}
        return rng.choice(atoms)

    schema = KIND.options_schema()
    passed = 0
    for _ in range(600):
        raw = {rng.choice(names): value() for _ in range(rng.randrange(0, 5))}
        if rng.random() < 0.5:
            raw["directions"] = rng.choice(["path", "minima", "given", "trajectory_pca"])
        try:
            opts = schema.load(raw)
            check(opts, _ctx(bad_blobs=("sha256:bad",)))
            passed += 1
        except ValidationError:
            pass
    assert passed >= 20, passed  # valid cases too, so the check itself ran to the end
