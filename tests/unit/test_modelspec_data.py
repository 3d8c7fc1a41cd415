"""modelspec data and facts: blobs, labels, synthetic determinism, submit_context, Problem."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch
from marshmallow import ValidationError
from safetensors.numpy import save as np_st_save
from safetensors.torch import save as st_save

from landscope_service.modelspec import (
    DataSchema,
    ModelSchema,
    generate,
    inspect_data,
    submit_context,
)
from landscope_service.modelspec.build import build_model, build_problem
from landscope_service.modelspec.data import load_data

X = [[0.1, 0.2, 0.3], [1.0, 2.0, 3.0], [-1.0, 0.0, 1.0], [0.5, 0.5, 0.5]]
WID = "sha256:" + "1" * 64
DID = "sha256:" + "2" * 64


def _npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _request(
    data: dict[str, Any], *, loss: str = "mse", output_dim: int = 1, **model: Any
) -> dict[str, Any]:
    arch = {"type": "mlp", "input_dim": 3, "hidden": [8], "output_dim": output_dim}
    return {
        "model": ModelSchema().load({"architecture": arch, **model}),
        "data": DataSchema().load(data),
        "loss": loss,
        "batch_size": None,
    }


def _messages(request: dict[str, Any], blobs: dict[str, bytes] | None = None) -> Any:
    with pytest.raises(ValidationError) as info:
        submit_context(request, (blobs or {}).__getitem__)
    return info.value.messages


def test_submit_context_facts() -> None:
    ctx = submit_context(
        _request({"inline": {"x": X, "y": [0, 1, 2, 1]}}, loss="cross_entropy", output_dim=3),
        {}.__getitem__,
    )
    assert (ctx.num_params, ctx.num_samples, ctx.input_dim, ctx.output_dim) == (59, 4, 3, 3)
    assert ctx.loss == "cross_entropy" and ctx.param_shapes["0.weight"] == (8, 3)
    with pytest.raises(ValueError, match="upload it with POST /v1/blobs"):
        ctx.check_weights(WID)


CASES: list[tuple[str, dict[str, Any], dict[str, Any], tuple[Any, ...], str]] = [
    ("label out of range", {"data": {"inline": {"x": X, "y": [0, 1, 2, 7]}},
     "loss": "cross_entropy", "output_dim": 3}, {}, ("data", "inline", "y"),
     "Class label 7 at row 3 is out of range for output_dim=3"),
    ("fractional label", {"data": {"inline": {"x": X, "y": [0, 1.5, 0, 0]}},
     "loss": "cross_entropy", "output_dim": 2}, {}, ("data", "inline", "y"), "row 1 has 1.5"),
    ("ce one output", {"data": {"inline": {"x": X, "y": [0, 1, 0, 0]}},
     "loss": "cross_entropy"}, {}, ("loss",), "output_dim >= 2"),
    ("x wrong width", {"data": {"inline": {"x": [[1.0, 2.0]], "y": [[1.0]]}}}, {},
     ("data", "inline", "x"), "(N, 3)"),
    ("y wrong width", {"data": {"inline": {"x": X, "y": [[1.0, 2.0]] * 4}}}, {},
     ("data", "inline", "y"), "(4, 1)"),
    ("row count", {"data": {"inline": {"x": X, "y": [[1.0]] * 3}}}, {},
     ("data", "inline", "y"), "same number of samples"),
    ("unknown data blob", {"data": {"blob": DID, "format": "npz"}}, {}, ("data", "blob"),
     "upload it with POST /v1/blobs first"),
    ("unknown weights blob", {"data": {"inline": {"x": X, "y": [1.0] * 4}}, "weights": WID},
     {}, ("model", "weights"), "upload it with POST /v1/blobs first"),
    ("weights shape", {"data": {"inline": {"x": X, "y": [1.0] * 4}}, "weights": WID},
     {WID: st_save({"0.weight": torch.zeros(8, 4), "0.bias": torch.zeros(8),
                    "2.weight": torch.zeros(1, 8), "2.bias": torch.zeros(1)})},
     ("model", "weights"), "tensor '0.weight' has shape (8, 4), the architecture needs (8, 3)"),
    ("npz without y", {"data": {"blob": DID, "format": "npz"}}, {DID: _npz(x=np.zeros((2, 3)))},
     ("data", "blob"), "arrays named x and y"),
    ("npz nan", {"data": {"blob": DID, "format": "npz"}},
     {DID: _npz(x=np.array([[0.0, np.nan, 0.0]]), y=np.zeros((1, 1)))},
     ("data", "blob"), "NaN or infinite"),
    ("npz object array", {"data": {"blob": DID, "format": "npz"}},
     {DID: _npz(x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))}, ("data", "blob"),
     "object arrays"),
    ("csv bad header", {"data": {"blob": DID, "format": "csv"}}, {DID: b"a,b\n1,2\n"},
     ("data", "blob"), "column 'a'"),
    ("csv bad number", {"data": {"blob": DID, "format": "csv"}},
     {DID: b"x0,x1,x2,y0\n1,2,3,4\n1,2,oops,4\n"}, ("data", "blob"), "line 3"),
    ("safetensors not x", {"data": {"blob": DID, "format": "safetensors"}},
     {DID: np_st_save({"inputs": np.zeros((2, 3))})}, ("data", "blob"), "named x and y"),
    ("moons need 2-D", {"data": {"synthetic": {"name": "two_moons"}}}, {},
     ("data", "synthetic", "name"), "input_dim 2"),
    ("classes vs outputs", {"data": {"synthetic": {"name": "circles"}},
     "loss": "mse", "output_dim": 3}, {}, ("data", "synthetic", "name"), "one-hot"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "spec", "blobs", "path", "text"), CASES, ids=[c[0] for c in CASES]
)
def test_submit_errors_name_the_field(
    case: str, spec: dict[str, Any], blobs: dict[str, bytes], path: tuple[Any, ...], text: str
) -> None:
    spec = dict(spec)
    data = spec.pop("data")
    msgs = _messages(_request(data, **spec), blobs)
    node = msgs
    for key in path:
        assert key in node, f"{key!r} missing in {msgs}"
        node = node[key]
    assert any(text in m for m in node), node


def test_all_problems_reported_together() -> None:
    msgs = _messages(_request({"inline": {"x": [[1.0, 2.0]], "y": [[1.0]]}}, weights=WID))
    assert set(msgs) == {"model", "data"}


@pytest.mark.parametrize("fmt", ["npz", "safetensors", "csv"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_blob_formats_load(fmt: str, loss: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3))
    y = rng.integers(0, 3, 5) if loss == "cross_entropy" else rng.standard_normal((5, 3))
    if fmt == "npz":
        raw = _npz(x=x, y=y)
    elif fmt == "safetensors":
        raw = np_st_save({"x": x, "y": y})
    else:
        cols = [f"x{i}" for i in range(3)]
        cols += ["y"] if loss == "cross_entropy" else [f"y{i}" for i in range(3)]
        lines = [",".join(cols)]
        for i in range(5):
            ys = [str(int(y[i]))] if loss == "cross_entropy" else [repr(float(v)) for v in y[i]]
            lines.append(",".join([*(repr(float(v)) for v in x[i]), *ys]))
        raw = ("\n".join(lines) + "\n").encode()
    spec = {"blob": DID, "format": fmt}
    blobs = {DID: raw}
    assert inspect_data(spec, blobs.__getitem__, loss=loss, input_dim=3, output_dim=3) == 5
    xt, yt = load_data(spec, blobs.__getitem__, loss=loss, device="cpu", dtype=torch.float64,
                       input_dim=3, output_dim=3)  # fmt: skip
    assert torch.allclose(xt, torch.from_numpy(x))
    if loss == "cross_entropy":
        assert yt.dtype == torch.long and torch.equal(yt, torch.from_numpy(y))
    else:
        assert yt.shape == (5, 3) and torch.allclose(yt, torch.from_numpy(y))


def test_mse_single_output_accepts_flat_y_and_flat_images() -> None:
    spec = DataSchema().load({"inline": {"x": X, "y": [1.0, 2.0, 3.0, 4.0]}})
    _, y = load_data(spec, {}.__getitem__, loss="mse", device="cpu", dtype=torch.float32,
                     input_dim=3, output_dim=1)  # fmt: skip
    assert y.shape == (4, 1)
    x = np.arange(8.0).reshape(2, 4)
    blobs = {DID: _npz(x=x, y=np.zeros(2))}
    xt, _ = load_data(
        {"blob": DID, "format": "npz"},
        blobs.__getitem__,
        loss="mse",
        device="cpu",
        dtype=torch.float32,
        input_dim=(1, 2, 2),
        output_dim=1,
    )
    assert xt.shape == (2, 1, 2, 2)


@pytest.mark.parametrize(
    "name", ["teacher_student", "gaussian_classes", "linear_regression", "two_moons", "circles"]
)
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_synthetic_deterministic(name: str, loss: str) -> None:
    spec = DataSchema().load({"synthetic": {"name": name, "num_samples": 50, "seed": 3}})
    d_in = 2
    kw = {"input_shape": (d_in,), "output_dim": 2, "loss": loss}
    x1, y1 = generate(spec["synthetic"], **kw)
    x2, y2 = generate(spec["synthetic"], **kw)
    x3, _ = generate({**spec["synthetic"], "seed": 4}, **kw)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and not np.array_equal(x1, x3)
    assert x1.shape == (50, 2) and np.isfinite(x1).all()
    if loss == "cross_entropy":
        assert y1.dtype == np.int64 and y1.shape == (50,) and set(y1.tolist()) <= {0, 1}
    else:
        assert y1.shape == (50, 2) and y1.dtype == np.float64


def test_synthetic_known_values_pinned() -> None:
    """Pins a few values so that a change of generator is noticed (cross-machine check)."""
    spec = DataSchema().load({"synthetic": {"name": "linear_regression", "num_samples": 3}})
    x, y = generate(spec["synthetic"], input_shape=(2,), output_dim=1, loss="mse")
    x_again = np.random.default_rng(np.random.SeedSequence(0).spawn(3)[0]).standard_normal((3, 2))
    assert np.array_equal(x, x_again) and y.shape == (3, 1)


@pytest.mark.parametrize("with_weights", [False, True])
def test_build_problem_end_to_end(with_weights: bool) -> None:
    arch = {"type": "mlp", "input_dim": 3, "hidden": [4, 4], "output_dim": 3,
            "batchnorm": True, "residual": True, "activation": "relu"}  # fmt: skip
    model_spec: dict[str, Any] = {"architecture": arch}
    blobs: dict[str, bytes] = {}
    if with_weights:
        user = build_model(ModelSchema().load(model_spec)["architecture"])
        blobs[WID] = st_save(user.state_dict())
        model_spec["weights"] = WID
    request = {
        "model": ModelSchema().load(model_spec),
        "data": DataSchema().load({"synthetic": {"name": "gaussian_classes", "num_samples": 20}}),
        "loss": "cross_entropy",
        "batch_size": 7,
    }
    ctx = submit_context(request, blobs.__getitem__)
    problem = build_problem(request, blobs.__getitem__, device=torch.device("cpu"),
                            dtype=torch.float64)  # fmt: skip
    assert problem.num_params == ctx.num_params and problem.num_samples == ctx.num_samples == 20
    assert problem.y.dtype == torch.long and problem.x.dtype == torch.float64
    assert list(problem.params) == list(ctx.param_shapes)
    full = problem.full_loss()
    direct = torch.nn.functional.cross_entropy(problem.model(problem.x), problem.y)
    assert torch.allclose(full, direct)
    if with_weights:
        assert torch.allclose(problem.params["0.weight"], user.state_dict()["0.weight"].double())


def test_build_problem_raises_value_error_with_path() -> None:
    request = _request({"inline": {"x": X, "y": [0, 1, 2, 9]}}, loss="cross_entropy", output_dim=3)
    with pytest.raises(ValueError, match=r"^data\.inline\.y: Class label 9 at row 3"):
        build_problem(request, {}.__getitem__, device=torch.device("cpu"), dtype=torch.float32)
