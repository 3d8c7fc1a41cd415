"""Decoding is bounded before allocation: npz, safetensors and csv files are checked
against the sizes their headers declare and the limits before anything is decoded.

Memory is measured with tracemalloc (numpy reports its buffers to it): refusing a bomb
must allocate less than ``_REFUSAL_BYTES``, whatever the declared size.
"""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from bombs import csv_wide, npz_bomb, npz_declaring, safetensors_raw
from marshmallow import ValidationError
from safetensors.numpy import save as np_st_save

from landscope_service.modelspec.containers import (
    DecodeError,
    DecodeLimits,
    current_limits,
    read_npz_arrays,
    read_safetensors_header,
    zip_central_directory,
)
from landscope_service.modelspec.data import inspect_data, load_arrays, load_data
from landscope_service.settings import SettingsError

_REFUSAL_BYTES = 2 * 2**20  # 2 MiB: headers and messages, never a payload
DID = "sha256:" + "d" * 64


def _peak(fn: Callable[[], Any]) -> tuple[int, BaseException | None]:
    """Peak bytes allocated while ``fn`` runs (and what it raised)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    err: BaseException | None = None
    try:
        fn()
    except BaseException as e:  # returned to the test
        err = e
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak, err


def _npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _inspect(raw: bytes, fmt: str, *, input_dim: int = 3, limits: DecodeLimits | None = None,
             loss: str = "mse", output_dim: int = 1) -> int:
    return inspect_data({"blob": DID, "format": fmt}, {DID: raw}.__getitem__, loss=loss,
                        input_dim=input_dim, output_dim=output_dim, limits=limits)


def _message(err: BaseException | None) -> str:
    assert isinstance(err, ValidationError), f"expected a ValidationError, got {err!r}"
    return str(err.messages["data"]["blob"][0])  # type: ignore[index,call-overload]


# ---------------------------------------------------------------------------- npz
def test_npz_bomb_of_4_gib_is_refused_from_its_headers() -> None:
    raw = npz_bomb()  # 4.2 MB of deflate declaring 2 x 2 GiB of float64
    assert len(raw) < 5_000_000
    peak, err = _peak(lambda: _inspect(raw, "npz"))
    msg = _message(err)
    assert "536,869,888 numbers" in msg and "LANDSCOPE_MAX_DATA_VALUES" in msg, msg
    assert peak < _REFUSAL_BYTES, f"refusing the bomb allocated {peak} bytes"


def test_npz_bomb_is_refused_in_the_worker_too() -> None:
    raw = npz_bomb()
    peak, err = _peak(lambda: load_data(
        {"blob": DID, "format": "npz"}, {DID: raw}.__getitem__, loss="mse", device="cpu",
        dtype=torch.float32, input_dim=3, output_dim=1))
    assert "LANDSCOPE_MAX_DATA_VALUES" in _message(err)
    assert peak < _REFUSAL_BYTES


def test_npz_truncated_bomb_header_disagreeing_with_member_size() -> None:
    raw = npz_declaring({"x": (4, 3), "y": (4, 1)}, extra_bytes=8)
    msg = _message(_peak(lambda: _inspect(raw, "npz"))[1])
    assert "header declares shape (4, 3)" in msg and "zip member holds" in msg, msg


def test_npz_truncated_data_within_limits_is_a_clear_error() -> None:
    raw = npz_declaring({"x": (4, 3), "y": (4, 1)})  # sizes agree, data missing
    msg = _message(_peak(lambda: _inspect(raw, "npz"))[1])
    assert "unreadable" in msg, msg


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_values_limit_is_exact(compressed: bool) -> None:
    save = np.savez_compressed if compressed else np.savez
    x, y = np.zeros((10, 3)), np.zeros((10, 1))
    buf = io.BytesIO()
    save(buf, x=x, y=y)
    raw = buf.getvalue()
    assert _inspect(raw, "npz", limits=DecodeLimits(max_values=40)) == 10
    msg = _message(_peak(lambda: _inspect(raw, "npz", limits=DecodeLimits(max_values=39)))[1])
    assert "40 numbers" in msg and "limit of 39" in msg, msg


def test_npz_with_too_large_central_directory_is_refused_before_parsing() -> None:
    raw = _npz(x=np.zeros((2, 3)), y=np.zeros(2), **{f"a{i}": np.zeros(1) for i in range(40)})
    _entries, cd_size = zip_central_directory(raw, DecodeLimits())
    assert cd_size > 1024
    with pytest.raises(DecodeError, match="central directory declares"):
        read_npz_arrays(raw, ("x", "y"), DecodeLimits(max_header_bytes=1024))


def test_npz_object_and_structured_dtypes_are_refused() -> None:
    raw = _npz(x=np.zeros((2, 3)), y=np.array([(1, 2.0)], dtype="i4,f8"))
    assert "data must be integers or floating point" in _message(
        _peak(lambda: _inspect(raw, "npz"))[1])


def test_npz_reads_only_x_and_y() -> None:
    raw = _npz(x=np.ones((5, 3)), y=np.ones(5), big=np.zeros(10_000))
    assert _inspect(raw, "npz", limits=DecodeLimits(max_values=20)) == 5


def test_not_a_zip() -> None:
    assert "end-of-central-directory" in _message(_peak(lambda: _inspect(b"hello", "npz"))[1])


# ---------------------------------------------------------------------------- safetensors
def _st(x: np.ndarray, y: np.ndarray) -> bytes:
    return np_st_save({"x": x, "y": y})


def test_safetensors_header_length_bounded_before_parsing() -> None:
    raw = safetensors_raw(b"{}", declared_len=2**40)
    peak, err = _peak(lambda: _inspect(raw, "safetensors"))
    assert "header declares 1048576.0 MiB" in _message(err)
    assert peak < _REFUSAL_BYTES
    raw = safetensors_raw(b"{}", declared_len=4096)  # within the limit, beyond the file
    assert "the file has 2 after the length" in _message(_peak(
        lambda: _inspect(raw, "safetensors"))[1])


def test_safetensors_header_limit_is_a_setting() -> None:
    raw = _st(np.zeros((2, 3)), np.zeros(2))
    assert _inspect(raw, "safetensors") == 2
    with pytest.raises(ValidationError, match="LANDSCOPE_MAX_FILE_HEADER_BYTES"):
        _inspect(raw, "safetensors", limits=DecodeLimits(max_header_bytes=16))


@pytest.mark.parametrize(("header", "body", "text"), [
    ({"x": {"dtype": "F64", "shape": [2, 3], "data_offsets": [0, 40]},
      "y": {"dtype": "F64", "shape": [2], "data_offsets": [40, 56]}}, b"\0" * 56,
     "inconsistent offsets"),
    ({"x": {"dtype": "F64", "shape": [1, 3], "data_offsets": [8, 32]},
      "y": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]},
      "z": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 32,
     "starts at byte 0 of the data, expected 8"),
    ({"x": {"dtype": "F64", "shape": [1, 3], "data_offsets": [0, 24]},
      "y": {"dtype": "F64", "shape": [1], "data_offsets": [32, 40]}}, b"\0" * 40,
     "starts at byte 32"),
    ({"x": {"dtype": "F64", "shape": [1, 3], "data_offsets": [0, 24]},
      "y": {"dtype": "F64", "shape": [1], "data_offsets": [24, 32]}}, b"\0" * 4096,
     "cover 32 bytes of data but the file holds 4096"),
    ({"x": {"dtype": "F64", "shape": [-1, 3], "data_offsets": [0, 24]},
      "y": {"dtype": "F64", "shape": [1], "data_offsets": [24, 32]}}, b"\0" * 32,
     "list of non-negative integers"),
    ({"x": {"dtype": "C64", "shape": [1, 3], "data_offsets": [0, 24]}}, b"\0" * 24,
     "dtype C64"),
    ({"x": {"dtype": "F64", "shape": [1, 3]}}, b"", "needs dtype, shape and data_offsets"),
    ([1, 2], b"", "not a JSON object"),
])  # fmt: skip
def test_safetensors_header_consistency(header: Any, body: bytes, text: str) -> None:
    raw = safetensors_raw(header, body)
    assert text in _message(_peak(lambda: _inspect(raw, "safetensors"))[1])


def test_safetensors_deeply_nested_header_is_an_error_not_a_crash() -> None:
    raw = safetensors_raw(b"[" * 100_000 + b"]" * 100_000)
    assert "unreadable JSON header" in _message(_peak(lambda: _inspect(raw, "safetensors"))[1])


def test_safetensors_values_limit_and_views() -> None:
    raw = _st(np.arange(30.0).reshape(10, 3), np.zeros(10))
    assert _inspect(raw, "safetensors", limits=DecodeLimits(max_values=40)) == 10
    with pytest.raises(ValidationError, match="40 numbers"):
        _inspect(raw, "safetensors", limits=DecodeLimits(max_values=39))
    entries, body = read_safetensors_header(raw, DecodeLimits())
    x = entries["x"].array(body)
    assert not x.flags.writeable and not x.flags.owndata  # a view into the file's bytes
    np.testing.assert_array_equal(x, np.arange(30.0).reshape(10, 3))


# ---------------------------------------------------------------------------- csv
def test_csv_with_millions_of_columns_refused_by_counting_commas() -> None:
    raw = csv_wide(1_000_000)  # 15 MB; the header would be a million strings
    peak, err = _peak(lambda: _inspect(raw, "csv"))
    msg = _message(err)
    assert "1,000,001 columns" in msg and "at most 4" in msg, msg
    assert peak < _REFUSAL_BYTES, f"refusing the csv allocated {peak} bytes"


def test_csv_rows_times_columns_bounded_before_parsing() -> None:
    raw = b"x0,x1,x2,y\n" + b"1,2,3,4\n" * 1000
    assert _inspect(raw, "csv", limits=DecodeLimits(max_values=4000)) == 1000
    peak, err = _peak(lambda: _inspect(raw, "csv", limits=DecodeLimits(max_values=3999)))
    assert "1,000 rows of 4 columns" in _message(err)
    assert peak < 64 * 1024


def test_csv_fast_and_careful_parsers_agree() -> None:
    plain = b"y,x2,x0,x1\n1,3,1,2\n\n0,6,4,5\n"
    quoted = b'y,x2,x0,x1\n"1","3",1,2\n0,6,4,"5"\n'
    no_newline = b"y,x2,x0,x1\n1,3,1,2\n0,6,4,5"
    for raw in (plain, quoted, no_newline):
        x, y = load_arrays({"blob": DID, "format": "csv"}, {DID: raw}.__getitem__, loss="mse",
                           input_dim=3, output_dim=1)
        np.testing.assert_array_equal(x, [[1, 2, 3], [4, 5, 6]])
        np.testing.assert_array_equal(y, [[1], [0]])


@pytest.mark.parametrize(("raw", "text"), [
    (b"x0,x1,x2,y\n1,2,3\n", "line 2 has 3 fields, the header has 4"),
    (b"x0,x1,x2,y\n1,2,3,4\n1,2,nan?,4\n", "line 3: 'nan?' is not a number"),
    (b"x0,x1,x2,y\n", "header but no data rows"),
    (b"x0,x1,x2,y\r1,2,3,4\r1,2,3,4\r", "line endings"),
])  # fmt: skip
def test_csv_errors_name_the_line(raw: bytes, text: str) -> None:
    assert text in _message(_peak(lambda: _inspect(raw, "csv"))[1])


# ---------------------------------------------------------------------------- settings
def test_limits_come_from_the_settings() -> None:
    assert current_limits({}) == DecodeLimits()
    limits = current_limits({"LANDSCOPE_MAX_DATA_VALUES": "7",
                             "LANDSCOPE_MAX_FILE_HEADER_BYTES": "4096"})
    assert limits.max_values == 7 and limits.max_header_bytes == 4096
    with pytest.raises(SettingsError, match="LANDSCOPE_MAX_DATA_VALUES"):
        current_limits({"LANDSCOPE_MAX_DATA_VALUES": "lots"})


def test_default_limit_applies_without_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _npz(x=np.zeros((10, 3)), y=np.zeros(10))
    monkeypatch.setenv("LANDSCOPE_MAX_DATA_VALUES", "39")
    with pytest.raises(ValidationError, match="limit of 39"):
        _inspect(raw, "npz")


# ---------------------------------------------------------------------------- weights
def test_weights_safetensors_header_bound() -> None:
    from landscope_service.modelspec.weights import check_weights

    raw = safetensors_raw(b"{}", declared_len=2**40)
    peak, err = _peak(lambda: check_weights(raw, {"0.weight": (2, 3)}))
    assert isinstance(err, ValueError) and "LANDSCOPE_MAX_FILE_HEADER_BYTES" in str(err)
    assert peak < _REFUSAL_BYTES


def test_weights_torch_zip_deflate_bomb_refused_before_reading() -> None:
    import zipfile

    from landscope_service.modelspec.weights import check_weights

    buf = io.BytesIO()
    torch.save({"0.weight": torch.zeros(2, 3)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data/0"):
                data = b"\0" * (64 * 2**20)  # a storage inflating to 64 MiB
            dst.writestr(info.filename, data)
    raw = out.getvalue()
    assert len(raw) < 200_000
    peak, err = _peak(lambda: check_weights(raw, {"0.weight": (2, 3)}))
    assert isinstance(err, ValueError) and "declare 67,1" in str(err), err
    assert peak < _REFUSAL_BYTES
