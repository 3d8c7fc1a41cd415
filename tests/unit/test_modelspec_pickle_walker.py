"""The symbolic pickle walker alone: what it returns for a state_dict, what it refuses."""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict

import pytest
import torch

from landscope_service.modelspec.pickle_walker import (
    MAX_OPCODES,
    StorageRef,
    TensorRef,
    symbolic_unpickle,
)


def _data_pkl(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        (name,) = [n for n in z.namelist() if n.endswith("/data.pkl")]
        return z.read(name)


def test_state_dict_becomes_tensor_refs_in_order() -> None:
    w = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    sd = OrderedDict([("a.weight", w), ("a.bias", torch.zeros(2)), ("t", w.t())])
    root = symbolic_unpickle(_data_pkl(sd))
    assert list(root) == ["a.weight", "a.bias", "t"]
    a, b, t = root["a.weight"], root["a.bias"], root["t"]
    assert isinstance(a, TensorRef) and isinstance(a.storage, StorageRef)
    assert (a.shape, a.strides, a.offset) == ((2, 3), (3, 1), 0)
    assert (a.storage.dtype, a.storage.numel) == ("float64", 6)
    assert (b.shape, b.storage.dtype) == ((2,), "float32")
    # a transposed view shares the storage of "a.weight", with swapped strides
    assert t.storage == a.storage and (t.shape, t.strides) == ((3, 2), (1, 3))


def test_parameters_unwrap_to_tensor_refs() -> None:
    p = torch.nn.Parameter(torch.ones(4))
    ref = symbolic_unpickle(_data_pkl({"p": p}))["p"]
    assert isinstance(ref, TensorRef) and ref.shape == (4,)


@pytest.mark.parametrize(
    ("obj", "named"),
    [
        (print, "builtins.print"),
        (OrderedDict.fromkeys, "builtins.getattr"),  # a bound method pickles via getattr
        (zipfile.ZipFile, "zipfile.ZipFile"),
    ],
)
def test_any_other_global_is_rejected_by_name(obj: object, named: str) -> None:
    for proto in (2, 4):  # GLOBAL and STACK_GLOBAL
        with pytest.raises(ValueError, match=f"references {named}, which a state_dict"):
            symbolic_unpickle(pickle.dumps(obj, protocol=proto, fix_imports=False))


def test_opcodes_a_state_dict_never_needs_are_rejected() -> None:
    # frozenset (protocol 4 FROZENSET), bytes (BINBYTES): valid pickles, never in a state_dict
    with pytest.raises(ValueError, match="opcode FROZENSET"):
        symbolic_unpickle(pickle.dumps(frozenset({1}), protocol=4))
    with pytest.raises(ValueError, match="opcode SHORT_BINBYTES"):
        symbolic_unpickle(pickle.dumps(b"x", protocol=4))


def test_plain_containers_evaluate_to_themselves() -> None:
    obj = {"k": [1, 2.5, "s", None, True, (1, 2, 3), ()]}
    assert symbolic_unpickle(pickle.dumps(obj, protocol=2)) == obj


@pytest.mark.parametrize(
    "pkl",
    [b"", b"\x80\x02", b"\x80\x02(t", b"\x80\x02NN."],
)
def test_malformed_pickles_are_value_errors(pkl: bytes) -> None:
    with pytest.raises(ValueError):
        symbolic_unpickle(pkl)


def test_opcode_count_is_bounded() -> None:
    pkl = b"\x80\x02]" + b"K\x01a" * (MAX_OPCODES // 2 + 1) + b"."
    with pytest.raises(ValueError, match="too long"):
        symbolic_unpickle(pkl)
