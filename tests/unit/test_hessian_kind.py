"""The hessian_spectrum kind: options schema, submit-time checks, no torch at import."""

from __future__ import annotations

import subprocess
import sys

import pytest
from marshmallow import ValidationError

from landscope_service.jobs.kinds.base import SubmitContext
from landscope_service.jobs.kinds.hessian_spectrum import KIND, HessianSpectrumOptionsSchema


def _ctx(p: int = 41, loss: str = "mse") -> SubmitContext:
    return SubmitContext(num_params=p, num_samples=10, input_dim=3, output_dim=1, loss=loss,
                         architecture={"type": "mlp"}, param_shapes={"0.weight": (p,)})


def test_defaults_equal_runner_defaults() -> None:
    from landscope_service.diagnostics.hessian.runner import DEFAULT_OPTIONS

    assert HessianSpectrumOptionsSchema().load({}) == DEFAULT_OPTIONS


def test_client_defaults_equal_server_defaults() -> None:
    from landscope.kinds.hessian_spectrum import HessianSpectrumOptions

    assert HessianSpectrumOptions().to_json(full=True) == HessianSpectrumOptionsSchema().load({})
    assert HessianSpectrumOptions().to_json() == {}  # only what differs from the defaults


def test_kind_declaration() -> None:
    assert KIND.name == "hessian_spectrum"
    assert KIND.runner == "landscope_service.diagnostics.hessian.runner:run_hessian_spectrum"
    assert KIND.check is not None and KIND.summary


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"top_k": "5"}, "top_k"),
        ({"top_k": 5.0}, "top_k"),
        ({"top_k": -1}, "top_k"),
        ({"tol": 0}, "tol"),
        ({"tol": 1.5}, "tol"),
        ({"density_grid_points": 1}, "density_grid_points"),
        ({"density_steps": 1}, "density_steps"),
        ({"density_sigma": 0.0}, "density_sigma"),
        ({"mode": "dense"}, "mode"),
        ({"hvp": "finite_differences"}, "hvp"),
        ({"max_basis": 6, "top_k": 5, "bottom_k": 1}, "max_basis"),
        ({"block_size": 0}, "block_size"),
        ({"block_size": 4, "max_basis": 12}, "max_basis"),
        ({"unknown_option": 1}, "unknown_option"),
    ],
)
def test_schema_rejects(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as e:
        HessianSpectrumOptionsSchema().load(options)
    assert field in e.value.messages


def test_check_top_k_exceeds_p() -> None:
    opts = HessianSpectrumOptionsSchema().load({"top_k": 50})
    assert KIND.check is not None
    with pytest.raises(ValidationError) as e:
        KIND.check(opts, _ctx(41))
    assert e.value.messages == {
        "top_k": ["top_k=50 exceeds the parameter count P=41; choose top_k <= 41."]}


def test_check_sum_and_exact_mode() -> None:
    assert KIND.check is not None
    opts = HessianSpectrumOptionsSchema().load({"top_k": 30, "bottom_k": 20, "max_basis": 60})
    with pytest.raises(ValidationError) as e:
        KIND.check(opts, _ctx(41))
    assert "bottom_k" in e.value.messages
    opts = HessianSpectrumOptionsSchema().load({"mode": "exact"})
    with pytest.raises(ValidationError) as e:
        KIND.check(opts, _ctx(100_000))
    assert "mode" in e.value.messages
    KIND.check(HessianSpectrumOptionsSchema().load({}), _ctx(41))  # accepted


def test_kind_module_does_not_import_torch() -> None:
    code = ("import sys; import landscope_service.jobs.kinds.hessian_spectrum; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
