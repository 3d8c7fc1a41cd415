"""modelspec weights: safetensors and torch.save round trips; .pt never unpickled."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save
from torch import nn

from landscope_service.modelspec import (
    ArchitectureSchema,
    buffer_shapes,
    check_weights,
    inspect_weights,
    param_shapes,
)
from landscope_service.modelspec.build import build_model
from landscope_service.modelspec.weights import load_params, load_weights

ARCH = ArchitectureSchema().load({"type": "mlp", "input_dim": 3, "hidden": [8], "output_dim": 1})
SHAPES = param_shapes(ARCH)


def _user_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))


def _pt(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_round_trip_users_state_dict(fmt: str) -> None:
    sd = _user_model().state_dict()
    data = st_save(dict(sd)) if fmt == "safetensors" else _pt(sd)
    info = inspect_weights(data)
    assert {k: v[0] for k, v in info.items()} == SHAPES
    assert {v[1] for v in info.values()} == {"float32"}
    check_weights(data, SHAPES)
    params = load_params(data, SHAPES, device="cpu", dtype=torch.float64)
    assert list(params) == list(SHAPES)
    for k, v in params.items():
        assert v.dtype == torch.float64 and torch.equal(v, sd[k].double())


def test_pt_non_contiguous_and_bfloat16() -> None:
    sd = {k: v.clone() for k, v in _user_model().state_dict().items()}
    sd["0.weight"] = torch.randn(3, 8).t()  # a non-contiguous view
    data = _pt(sd)
    check_weights(data, SHAPES)
    assert torch.equal(load_params(data, SHAPES)["0.weight"], sd["0.weight"])
    half = {k: v.to(torch.bfloat16) for k, v in sd.items()}
    assert inspect_weights(_pt(half))["0.weight"] == ((8, 3), "bfloat16")
    check_weights(st_save({k: v.contiguous() for k, v in half.items()}), SHAPES)


def test_batchnorm_buffers_optional_but_checked() -> None:
    arch = ArchitectureSchema().load(
        {"type": "mlp", "input_dim": 3, "hidden": [4], "output_dim": 1, "batchnorm": True}
    )
    shapes, bufs = param_shapes(arch), buffer_shapes(arch)
    model = build_model(arch)
    model[1].running_mean.fill_(0.5)
    full = _pt(model.state_dict())
    check_weights(full, shapes, buffer_shapes=bufs)
    _, buffers = load_weights(full, shapes, buffer_shapes=bufs, dtype=torch.float64)
    assert torch.equal(buffers["1.running_mean"], torch.full((4,), 0.5, dtype=torch.float64))
    assert buffers["1.num_batches_tracked"].dtype == torch.long
    only_params = st_save({k: v for k, v in model.state_dict().items() if k in shapes})
    _, buffers = load_weights(only_params, shapes, buffer_shapes=bufs)
    assert torch.equal(buffers["1.running_var"], torch.ones(4))
    with pytest.raises(ValueError, match=r"nexpected tensors '1\.running_mean'"):
        check_weights(full, shapes)


def test_mismatch_message_names_everything() -> None:
    sd = dict(_user_model().state_dict())
    sd["0.weight"] = torch.zeros(8, 4)
    del sd["2.bias"]
    sd["extra"] = torch.zeros(1)
    with pytest.raises(ValueError) as info:
        check_weights(st_save(sd), SHAPES)
    msg = str(info.value)
    assert "tensor '0.weight' has shape (8, 4), the architecture needs (8, 3)" in msg
    assert "issing tensors '2.bias'" in msg
    assert "unexpected tensors 'extra'" in msg


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_rejected(fmt: str, bad: float) -> None:
    sd = {k: v.clone() for k, v in _user_model().state_dict().items()}
    sd["2.weight"][0, 3] = bad
    data = st_save(sd) if fmt == "safetensors" else _pt(sd)
    with pytest.raises(ValueError, match=r"ensor '2\.weight' has 1 NaN or infinite"):
        check_weights(data, SHAPES)


def test_integer_weights_rejected() -> None:
    sd = {k: torch.zeros(v.shape, dtype=torch.int32) for k, v in _user_model().state_dict().items()}
    with pytest.raises(ValueError, match="must be floating point"):
        check_weights(st_save(sd), SHAPES)


def test_overflow_in_requested_dtype() -> None:
    sd = {k: v.double() for k, v in _user_model().state_dict().items()}
    sd["0.bias"][0] = 1e300
    data = st_save(sd)
    check_weights(data, SHAPES)
    with pytest.raises(ValueError, match="overflow"):
        load_params(data, SHAPES, dtype=torch.float32)


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


def test_malicious_pickle_rejected_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = _pt({"0.weight": _Evil(str(marker))})
    with pytest.raises(ValueError, match=r"references (posix|os|nt)\.system"):
        inspect_weights(data)
    with pytest.raises(ValueError, match="system"):
        check_weights(data, SHAPES)
    with pytest.raises(ValueError, match="system"):
        load_params(data, SHAPES)
    assert not marker.exists()


def test_hand_made_zip_with_eval_rejected(tmp_path: Path) -> None:
    marker = tmp_path / "pwned2"
    payload = pickle.dumps(_Evil(str(marker)), protocol=4)  # STACK_GLOBAL path
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", payload)
    with pytest.raises(ValueError, match="system"):
        inspect_weights(buf.getvalue())
    assert not marker.exists()


def test_checkpoint_dict_and_legacy_format_rejected() -> None:
    sd = _user_model().state_dict()
    with pytest.raises(ValueError, match="checkpoint, not a state_dict"):
        inspect_weights(_pt({"state_dict": sd, "epoch": 3}))
    legacy = io.BytesIO()
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="legacy"):
        inspect_weights(legacy.getvalue())


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage!", struct.pack("<Q", 10**12) + b"{}", struct.pack("<Q", 2) + b"[]",
     struct.pack("<Q", 5) + b"{bad}", b"PK\x03\x04broken zip"],
)  # fmt: skip
def test_garbage_rejected_with_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        inspect_weights(data)


def test_safetensors_bad_offsets_rejected() -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 100]}}).encode()
    with pytest.raises(ValueError, match="inconsistent offsets"):
        inspect_weights(struct.pack("<Q", len(header)) + header + b"\0" * 8)


def test_not_bytes_is_type_error() -> None:
    with pytest.raises(TypeError):
        inspect_weights("0.weight")  # type: ignore[arg-type]


def test_load_params_ignores_batchnorm_buffers() -> None:
    arch = ArchitectureSchema().load(
        {"type": "mlp", "input_dim": 3, "hidden": [4], "output_dim": 1, "batchnorm": True}
    )
    shapes = param_shapes(arch)
    params = load_params(_pt(build_model(arch).state_dict()), shapes)
    assert list(params) == list(shapes)
