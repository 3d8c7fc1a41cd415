"""Options schema, submit-time check and SDK options of minimizer_manifold."""

from __future__ import annotations

import subprocess
import sys

import pytest
from marshmallow import ValidationError

from landscope.kinds.minimizer_manifold import MinimizerManifoldOptions
from landscope_service.diagnostics.manifold import DEFAULT_OPTIONS
from landscope_service.jobs.kinds.base import SubmitContext
from landscope_service.jobs.kinds.minimizer_manifold import (
    KIND,
    MinimizerManifoldOptionsSchema,
    check,
)


def _ctx(P: int = 41, N: int | None = 10, r: int = 1, loss: str = "mse") -> SubmitContext:
    return SubmitContext(num_params=P, num_samples=N, input_dim=3, output_dim=r, loss=loss,
                         architecture={"type": "mlp"}, param_shapes={})


def test_kind_declaration() -> None:
    assert KIND.name == "minimizer_manifold"
    assert KIND.runner == "landscope_service.diagnostics.manifold.runner:run_minimizer_manifold"
    assert KIND.check is check and KIND.options_schema is MinimizerManifoldOptionsSchema


def test_defaults_agree_across_schema_runner_and_sdk() -> None:
    loaded = MinimizerManifoldOptionsSchema().load({})
    assert loaded == DEFAULT_OPTIONS
    assert MinimizerManifoldOptions().to_json(full=True) == DEFAULT_OPTIONS
    # the SDK's JSON (only what differs from the defaults) loads back to the full options
    custom = MinimizerManifoldOptions(walk_steps=2, route="gram", rank_rtol=1e-6)
    assert custom.to_json() == {"walk_steps": 2, "route": "gram", "rank_rtol": 1e-6}
    assert MinimizerManifoldOptionsSchema().load(custom.to_json()) == custom.to_json(full=True)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"walk_steps": -1}, "walk_steps"),
        ({"walk_steps": "5"}, "walk_steps"),  # strict integers
        ({"walk_steps": 5.0}, "walk_steps"),
        ({"fit_tol": 0}, "fit_tol"),
        ({"fit_tol": float("nan")}, "fit_tol"),
        ({"walk_step_length": -0.1}, "walk_step_length"),
        ({"route": "sparse"}, "route"),
        ({"rank_rtol": 1.5}, "rank_rtol"),
        ({"retract_max_steps": 0}, "retract_max_steps"),
        ({"memory_mb": 10**6}, "memory_mb"),
        ({"top_k": 3}, "top_k"),  # unknown field
    ],
)
def test_schema_rejects(options: dict, field: str) -> None:
    with pytest.raises(ValidationError) as e:
        MinimizerManifoldOptionsSchema().load(options)
    assert field in e.value.messages


def test_check_loss_is_a_top_level_error() -> None:
    with pytest.raises(ValidationError) as e:
        check(DEFAULT_OPTIONS, _ctx(loss="cross_entropy"))
    msg = e.value.messages["^loss"][0]  # type: ignore[index]
    assert "squared loss (mse)" in msg and "cross_entropy" in msg


def test_check_memory_and_route() -> None:
    check(DEFAULT_OPTIONS, _ctx())  # small problem: fine
    check(DEFAULT_OPTIONS, _ctx(P=10**6, N=None))  # unknown N: only P-based checks
    # dense J of 2000 x 1e6 does not fit 1 GiB
    with pytest.raises(ValidationError) as e:
        check({**DEFAULT_OPTIONS, "route": "dense", "hessian_exact_max_params": 0},
              _ctx(P=10**6, N=2000))
    assert "route" in e.value.messages and "gram" in e.value.messages["route"][0]  # type: ignore[index]
    # the Gram matrix of rN = 20000 needs ~9 GiB
    with pytest.raises(ValidationError) as e:
        check(DEFAULT_OPTIONS, _ctx(P=10**6, N=20000))
    assert "memory_mb" in e.value.messages
    # exact Hessian of 2000 parameters: 92 MiB, fits; with memory_mb 64 it does not
    with pytest.raises(ValidationError) as e:
        check({**DEFAULT_OPTIONS, "memory_mb": 64}, _ctx(P=2000, N=10))
    assert "hessian_exact_max_params" in e.value.messages["memory_mb"][0]  # type: ignore[index]


def test_sdk_options_validate() -> None:
    with pytest.raises(ValueError, match="walk_steps"):
        MinimizerManifoldOptions(walk_steps=-1)
    with pytest.raises(ValueError, match="route"):
        MinimizerManifoldOptions(route="svd")  # type: ignore[arg-type]


def test_kind_module_does_not_import_torch() -> None:
    code = ("import sys, landscope_service.jobs.kinds.minimizer_manifold; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
