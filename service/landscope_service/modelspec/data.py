"""A request's ``data``: inspection at submit time (numpy, no torch) and loading in the worker.

Conventions (docs/modelspec.md has the full list):

* ``x`` has shape ``(N, *input_shape)``; it may also be flat ``(N, prod(input_shape))``
  (reshaped row-major), and ``(N,)`` is accepted when ``input_shape == (1,)``.
* mse: ``y`` has shape ``(N, r)`` of numbers; ``(N,)`` is accepted when ``r == 1``.
* cross_entropy: ``y`` holds ``N`` integer class labels in ``[0, r)``, shape ``(N,)``
  (``(N, 1)`` is accepted); integral floats such as ``2.0`` count as integers.
* ``npz`` / ``safetensors`` blobs hold arrays named ``x`` and ``y`` (others are ignored);
  ``npz`` is read with ``allow_pickle=False``.
* ``csv`` blobs: a header row; input columns ``x0, x1, ...`` (the flattened sample,
  row-major), target columns ``y0, y1, ...``, or a single ``y`` column (labels, or the
  target when r == 1); any column order; comma separated.

Errors are ``marshmallow.ValidationError`` with messages nested like the request, e.g.
``{"data": {"inline": {"y": ["Class label 7 at row 3 is out of range for output_dim=3 ..."]}}}``.
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from marshmallow import ValidationError

from .containers import (
    DecodeError,
    DecodeLimits,
    current_limits,
    npz_member_names,
    read_npz_arrays,
    read_safetensors_header,
)
from .synthetic import generate, synthetic_problems

if TYPE_CHECKING:
    import torch

__all__ = ["flatten_messages", "inspect_data", "load_arrays", "load_data", "read_blob_or_error"]

ReadBlob = Callable[[str], bytes]
_CSV_COLUMN = re.compile(r"^(x|y)(\d*)$")


def _error(path: Sequence[str], message: str) -> ValidationError:
    out: Any = [message]
    for key in reversed(path):
        out = {key: out}
    return ValidationError(out)


def flatten_messages(messages: Any, prefix: str = "") -> str:
    """One line from nested marshmallow messages: ``"data.inline.y: ...; loss: ..."``."""
    if isinstance(messages, dict):
        parts = [
            flatten_messages(v, f"{prefix}.{k}" if prefix else str(k)) for k, v in messages.items()
        ]
        return "; ".join(p for p in parts if p)
    if isinstance(messages, list | tuple):
        text = " ".join(str(m) for m in messages)
    else:
        text = str(messages)
    return f"{prefix}: {text}" if prefix else text


def read_blob_or_error(read_blob: ReadBlob, blob_id: str, path: Sequence[str]) -> bytes:
    """Read a blob, turning an unknown id into a ValidationError at ``path``.

    Args:
        read_blob: the blob reader; raises ``KeyError`` for an unknown id.
        blob_id: ``"sha256:..."``.
        path: where the id sits in the request, e.g. ``("data", "blob")``.

    Raises:
        ValidationError: ``"unknown blob id ...; upload it with POST /v1/blobs first"``.
    """
    try:
        return read_blob(blob_id)
    except KeyError:
        raise _error(
            path, f"Unknown blob id {blob_id}; upload it with POST /v1/blobs first."
        ) from None


def _shape_in(input_shape: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(input_shape, int):
        return (input_shape,)
    return tuple(int(s) for s in input_shape)


def _fmt(shape: Sequence[int]) -> str:
    shape = tuple(shape)
    return f"({shape[0]},)" if len(shape) == 1 else str(shape)


def _numeric(arr: np.ndarray, name: str, path: Sequence[str]) -> np.ndarray:
    if arr.dtype.kind not in "iuf":
        raise _error(path, f"{name} must hold numbers, got an array of dtype {arr.dtype}.")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise _error(
                path,
                f"{name} has {int(bad.sum())} NaN or infinite values (first at row {idx[0]}"
                f"{', index ' + str(idx[1:]) if len(idx) > 1 else ''}); all values must be finite.",
            )
    return arr


def _check_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    loss: str,
    input_shape: tuple[int, ...],
    output_dim: int,
    x_path: Sequence[str],
    y_path: Sequence[str],
    x_name: str = "x",
    y_name: str = "y",
    convert: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and normalise ``(x, y)``; returns x float64, y float64 or int64 (with
    ``convert=False``, the checked arrays in their own dtypes: no copy at submit time)."""
    x = _numeric(np.asarray(x), x_name, x_path)
    y = _numeric(np.asarray(y), y_name, y_path)
    if x.ndim == 0 or x.shape[0] < 1:
        raise _error(x_path, f"{x_name} needs at least one sample (row), got shape {x.shape}.")
    n = x.shape[0]
    numel = math.prod(input_shape)
    if x.shape[1:] == input_shape:
        pass
    elif x.ndim == 2 and x.shape[1] == numel:
        x = x.reshape(n, *input_shape)
    elif x.ndim == 1 and input_shape == (1,):
        x = x.reshape(n, 1)
    else:
        raise _error(
            x_path,
            f"{x_name} has shape {_fmt(x.shape)}; the architecture needs (N, "
            f"{', '.join(str(s) for s in input_shape)}) (input shape {_fmt(input_shape)}).",
        )
    if y.ndim == 0 or y.shape[0] != n:
        raise _error(
            y_path,
            f"{y_name} has {y.shape[0] if y.ndim else 0} rows but {x_name} has {n}; "
            f"they need the same number of samples.",
        )
    if loss == "cross_entropy":
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.reshape(n)
        if y.ndim != 1:
            raise _error(
                y_path,
                f"{y_name} has shape {_fmt(y.shape)}; cross_entropy needs ({n},) integer "
                f"class labels (class probabilities are not supported).",
            )
        if y.dtype.kind == "f":
            frac = np.nonzero(y != np.round(y))[0]
            if frac.size:
                row = int(frac[0])
                raise _error(
                    y_path,
                    f"Class labels must be integers; row {row} has {y[row].item()!r}.",
                )
        out_of_range = np.nonzero((y < 0) | (y >= output_dim))[0]
        if out_of_range.size:
            row = int(out_of_range[0])
            label = y[row].item()
            label = int(label) if float(label).is_integer() else label
            raise _error(
                y_path,
                f"Class label {label} at row {row} is out of range for output_dim="
                f"{output_dim} (labels must be in [0, {output_dim})).",
            )
        if not convert:
            return x, y
        return x.astype(np.float64, copy=False), y.astype(np.int64)
    if y.ndim == 1 and output_dim == 1:
        y = y.reshape(n, 1)
    if y.ndim != 2 or y.shape[1] != output_dim:
        raise _error(
            y_path,
            f"{y_name} has shape {_fmt(y.shape)}; mse needs ({n}, {output_dim}) targets "
            f"(output_dim={output_dim}).",
        )
    if not convert:
        return x, y
    return x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)


def _npz(
    raw: bytes, path: Sequence[str], limits: DecodeLimits, **_: Any
) -> tuple[np.ndarray, np.ndarray]:
    """x and y of an .npz, their sizes checked from the zip directory and .npy headers
    before anything is inflated or allocated."""
    try:
        names = npz_member_names(raw, limits)
        if "x" not in names or "y" not in names:
            raise _error(
                path,
                f"The .npz file needs arrays named x and y, it has {names[:20]}; save it "
                f"with numpy.savez(f, x=..., y=...).",
            )
        arrays = read_npz_arrays(raw, ("x", "y"), limits)
    except DecodeError as e:
        raise _error(path, f"Not a usable .npz file: {e}") from e
    return arrays["x"], arrays["y"]


def _safetensors(
    raw: bytes, path: Sequence[str], limits: DecodeLimits, **_: Any
) -> tuple[np.ndarray, np.ndarray]:
    """x and y of a safetensors file, viewed in place after the header passed the checks."""
    try:
        entries, body = read_safetensors_header(raw, limits)
    except DecodeError as e:
        raise _error(path, f"Not a usable safetensors file: {e}") from e
    if "x" not in entries or "y" not in entries:
        raise _error(
            path,
            f"The safetensors file needs tensors named x and y, it has {sorted(entries)[:20]}.",
        )
    x, y = entries["x"], entries["y"]
    for t in (x, y):
        if t.st_dtype == "BF16":
            raise _error(path, f"Tensor {t.name!r} is bfloat16; save data as float32 or float64.")
    total = x.numel + y.numel
    if total > limits.max_values:
        raise _error(
            path,
            f"The file declares {total:,} numbers (x {x.shape}, y {y.shape}), above the limit "
            f"of {limits.max_values:,} (LANDSCOPE_MAX_DATA_VALUES); nothing was decoded.",
        )
    return x.array(body), y.array(body)


def _csv_header(raw: bytes, path: Sequence[str], max_columns: int) -> tuple[list[str], int]:
    """The header's column names and where the data start; the column count is checked
    by counting commas before the header is split."""
    end = raw.find(b"\n")
    end = len(raw) if end < 0 else end
    cr = raw.find(b"\r", 0, end)
    if 0 <= cr < end - 1:
        raise _error(path, "The csv file's line endings are not \\n or \\r\\n.")
    columns = raw.count(b",", 0, end) + 1
    if columns > max_columns:
        raise _error(
            path,
            f"The csv header has {columns:,} columns; this architecture needs at most "
            f"{max_columns:,} (its flattened input x0, x1, ... and the targets y0, ... or y).",
        )
    try:
        line = raw[:end].decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _error(path, f"The csv file is not UTF-8 text ({e}).") from e
    header = next(csv.reader([line]), None)
    return ([h.strip() for h in header] if header else []), min(end + 1, len(raw))


def _csv(
    raw: bytes,
    path: Sequence[str],
    limits: DecodeLimits,
    *,
    input_shape: tuple[int, ...],
    output_dim: int,
) -> tuple[np.ndarray, np.ndarray]:
    """x and y of a csv file. The column count (against the architecture) and the number
    of values (rows times columns, against the limit) are checked before parsing; the
    values are then parsed into one array of that size."""
    max_columns = math.prod(input_shape) + max(output_dim, 1)
    names, body_start = _csv_header(raw, path, max_columns)
    if not names or names == [""]:
        raise _error(path, "The csv file is empty; it needs a header row x0,x1,...,y0,...")
    cols: dict[str, dict[int, int]] = {"x": {}, "y": {}}
    bare_y: int | None = None
    for j, name in enumerate(names):
        m = _CSV_COLUMN.match(name)
        if m is None:
            raise _error(
                path,
                f"csv column {name!r} is not x<i> or y<i> (or y); the header must name "
                f"input columns x0, x1, ... and targets y0, ... or y.",
            )
        kind, index = m.group(1), m.group(2)
        if kind == "y" and index == "":
            bare_y = j
            continue
        if index == "":
            raise _error(path, "csv column 'x' needs an index: x0, x1, ...")
        cols[kind][int(index)] = j
    if bare_y is not None and cols["y"]:
        raise _error(path, "csv has both a 'y' column and y0, y1, ... columns; use one.")
    if bare_y is not None:
        cols["y"] = {0: bare_y}
    for kind in ("x", "y"):
        idx = sorted(cols[kind])
        if not idx:
            raise _error(path, f"csv has no {kind} columns ({kind}0, {kind}1, ...).")
        if idx != list(range(len(idx))):
            raise _error(path, f"csv {kind} columns must be {kind}0..{kind}{len(idx) - 1}.")
    rows = raw.count(b"\n", body_start) + (0 if raw.endswith(b"\n") else 1)
    if body_start >= len(raw):
        rows = 0
    if rows * len(names) > limits.max_values:
        raise _error(
            path,
            f"The csv file has up to {rows:,} rows of {len(names):,} columns, above the limit "
            f"of {limits.max_values:,} numbers (LANDSCOPE_MAX_DATA_VALUES); nothing was parsed.",
        )
    table = _csv_values(raw, body_start, rows, names, path)
    if table.shape[0] == 0:
        raise _error(path, "The csv file has a header but no data rows.")
    x_cols = [cols["x"][i] for i in range(len(cols["x"]))]
    y_cols = [cols["y"][i] for i in range(len(cols["y"]))]
    x = table[:, x_cols]
    y = table[:, y_cols]
    return x, (y[:, 0] if bare_y is not None else y)


def _csv_values(
    raw: bytes, body_start: int, rows: int, names: list[str], path: Sequence[str]
) -> np.ndarray:
    """Parse the data rows into a ``(rows, columns)`` float64 array of at most the counted
    size: numpy's C parser first, and on any complaint the csv module, line by line, to
    name the line and field (and to accept quoted fields)."""
    width = len(names)
    stream = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", newline="")
    try:
        stream.seek(0)
        stream.readline()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = np.loadtxt(
                stream, delimiter=",", dtype=np.float64, ndmin=2, comments=None,
                max_rows=rows,
            )
        if table.size == 0:
            return np.empty((0, width))
        if table.shape[1] == width:
            return table
    except (ValueError, UnicodeDecodeError):
        pass
    out = np.empty((rows, width), dtype=np.float64)
    n = 0
    try:
        text = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        next(reader, None)
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if n >= rows:
                raise _error(path, "The csv file's line endings are not \\n or \\r\\n.")
            if len(row) != width:
                raise _error(
                    path, f"csv line {line} has {len(row)} fields, the header has {width}."
                )
            try:
                out[n] = [float(c) for c in row]
            except ValueError:
                bad = next(c for c in row if not _is_float(c))
                raise _error(path, f"csv line {line}: {bad!r} is not a number.") from None
            n += 1
    except UnicodeDecodeError as e:
        raise _error(path, f"The csv file is not UTF-8 text ({e}).") from e
    except csv.Error as e:
        raise _error(path, f"The csv file is malformed ({e}).") from e
    return out[:n]


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_arrays(
    data_spec: dict[str, Any],
    read_blob: ReadBlob,
    *,
    loss: str,
    input_dim: int | Sequence[int],
    output_dim: int,
    limits: DecodeLimits | None = None,
    convert: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The data set as validated numpy arrays (no torch).

    Blob files are bounded before they are decoded: the sizes their headers declare
    (zip directory and ``.npy`` headers, the safetensors header, the csv header's column
    count and line count) are checked against ``limits`` and the architecture first.

    Args:
        data_spec: the validated ``data`` object of the request.
        read_blob: reads a blob by id; raises ``KeyError`` for an unknown id.
        loss: ``"mse"`` or ``"cross_entropy"``.
        input_dim: one sample's shape, or an int for ``(input_dim,)``.
        output_dim: r.
        limits: the decoding bounds (default: this process's ``LANDSCOPE_*`` settings).
        convert: ``False`` keeps the checked arrays in their file's dtype (submit time).

    Returns:
        ``(x, y)``: x float64 ``(N, *input_shape)``; y float64 ``(N, r)`` for mse,
        int64 ``(N,)`` for cross_entropy.

    Raises:
        ValidationError: messages nested like the request, naming the field.
    """
    in_shape = _shape_in(input_dim)
    limits = limits or current_limits()
    if "inline" in data_spec:
        inline = data_spec["inline"]
        return _check_arrays(
            np.asarray(inline["x"]),
            np.asarray(inline["y"]),
            loss=loss,
            input_shape=in_shape,
            output_dim=output_dim,
            x_path=("data", "inline", "x"),
            y_path=("data", "inline", "y"),
            convert=convert,
        )
    if "blob" in data_spec:
        path = ("data", "blob")
        raw = read_blob_or_error(read_blob, data_spec["blob"], path)
        fmt = data_spec.get("format")
        readers = {"npz": _npz, "safetensors": _safetensors, "csv": _csv}
        if fmt not in readers:
            raise _error(
                ("data", "format"), f"Unknown format {fmt!r}: use npz, safetensors or csv."
            )
        x, y = readers[fmt](raw, path, limits, input_shape=in_shape, output_dim=output_dim)
        return _check_arrays(
            x,
            y,
            loss=loss,
            input_shape=in_shape,
            output_dim=output_dim,
            x_path=path,
            y_path=path,
            x_name=f"x (in the {fmt} blob)",
            y_name=f"y (in the {fmt} blob)",
            convert=convert,
        )
    if "synthetic" in data_spec:
        spec = data_spec["synthetic"]
        problems = synthetic_problems(spec, input_shape=in_shape, output_dim=output_dim, loss=loss)
        if problems:
            raise ValidationError({"data": {"synthetic": problems}})
        return generate(spec, input_shape=in_shape, output_dim=output_dim, loss=loss)
    raise ValidationError({"data": {"_schema": ["Give one of inline, blob or synthetic."]}})


def inspect_data(
    data_spec: dict[str, Any],
    read_blob: ReadBlob,
    *,
    loss: str,
    input_dim: int | Sequence[int],
    output_dim: int,
    limits: DecodeLimits | None = None,
) -> int:
    """Check the data against the architecture and loss at submit time; return N.

    Inline and blob data are read and checked in full (shapes, finite values, labels),
    blob files only after their declared sizes passed ``limits`` (see
    :func:`load_arrays`), and without converting them to float64; synthetic data is
    checked against the architecture without being generated.

    Args:
        data_spec: the validated ``data`` object of the request.
        read_blob: reads a blob by id; raises ``KeyError`` for an unknown id.
        loss: ``"mse"`` or ``"cross_entropy"``.
        input_dim: one sample's shape, or an int for ``(input_dim,)``.
        output_dim: r.
        limits: the decoding bounds (default: this process's ``LANDSCOPE_*`` settings).

    Returns:
        N, the number of samples.

    Raises:
        ValidationError: messages nested like the request, e.g.
            ``{"data": {"inline": {"y": ["Class label 7 at row 3 is out of range ..."]}}}``.
    """
    if "synthetic" in data_spec:
        spec = data_spec["synthetic"]
        problems = synthetic_problems(
            spec, input_shape=_shape_in(input_dim), output_dim=output_dim, loss=loss
        )
        if problems:
            raise ValidationError({"data": {"synthetic": problems}})
        return int(spec["num_samples"])
    x, _ = load_arrays(
        data_spec, read_blob, loss=loss, input_dim=input_dim, output_dim=output_dim,
        limits=limits, convert=False,
    )
    return int(x.shape[0])


def load_data(
    data_spec: dict[str, Any],
    read_blob: ReadBlob,
    *,
    loss: str,
    device: torch.device | str,
    dtype: torch.dtype,
    input_dim: int | Sequence[int],
    output_dim: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The data set as tensors (worker side, torch).

    Args:
        data_spec: the validated ``data`` object of the request.
        read_blob: reads a blob by id; raises ``KeyError`` for an unknown id.
        loss: ``"mse"`` or ``"cross_entropy"``.
        device: where the tensors go.
        dtype: floating dtype of ``x`` (and of ``y`` for mse).
        input_dim: one sample's shape, or an int for ``(input_dim,)``.
        output_dim: r.

    Returns:
        ``(x, y)``: ``y`` is ``(N, r)`` of ``dtype`` for mse, ``(N,)`` long for
        cross_entropy.

    Raises:
        ValidationError: as :func:`inspect_data`.
        ValueError: if a value overflows ``dtype`` (e.g. 1e300 in float32).
    """
    import torch

    x_np, y_np = load_arrays(
        data_spec, read_blob, loss=loss, input_dim=input_dim, output_dim=output_dim
    )
    if not x_np.flags.writeable:  # a view into the file's bytes (safetensors float64)
        x_np = x_np.copy()
    if not y_np.flags.writeable:
        y_np = y_np.copy()
    x = torch.from_numpy(x_np).to(device=device, dtype=dtype)
    if loss == "cross_entropy":
        y = torch.from_numpy(y_np).to(device=device, dtype=torch.long)
    else:
        y = torch.from_numpy(y_np).to(device=device, dtype=dtype)
    for name, t in (("x", x), ("y", y)):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"data: {name} has values that overflow {dtype}.")
    return x, y
