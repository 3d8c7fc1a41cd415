"""Weights files: inspection and checks without torch, loading with torch in the worker.

Two formats are accepted, told apart by their first bytes:

* **safetensors**: an 8-byte little-endian header length, a JSON header
  ``{name: {"dtype", "shape", "data_offsets"}}``, then raw little-endian data. Read here
  by parsing the header; values are checked with numpy.
* **PyTorch** ``torch.save(model.state_dict(), f)`` (the zip format of torch >= 1.6).
  The pickle inside (``archive/data.pkl``) is **never unpickled** at submit time: the
  symbolic interpreter of :mod:`.pickle_walker` walks its opcodes and accepts only what
  a state_dict contains; nothing is ever imported or called. The worker then reads the
  same file with ``torch.load(..., weights_only=True)``.

The legacy (pre-1.6, non-zip) ``torch.save`` format is rejected with a hint to re-save.
"""

from __future__ import annotations

import io
import math
import struct
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .containers import DecodeError, current_limits, read_safetensors_header, zip_central_directory
from .names import mapping_hint, safetensors_order
from .pickle_walker import TensorRef, symbolic_unpickle

if TYPE_CHECKING:
    import torch

__all__ = ["check_weights", "inspect_weights", "load_params", "load_weights"]

_FLOAT_DTYPES = frozenset({"float64", "float32", "float16", "bfloat16"})
_MAX_LISTED = 8
_BUFFER_LEAVES = frozenset({"running_mean", "running_var", "num_batches_tracked"})


@dataclass(frozen=True)
class _TensorView:
    """Where one tensor's values lie: a flat numpy array and a strided view into it."""

    shape: tuple[int, ...]
    dtype: str
    flat: np.ndarray  # the storage, as 1-D numpy array (bfloat16 as uint16 bits)
    offset: int
    strides: tuple[int, ...]

    def values(self) -> np.ndarray:
        """The tensor's elements as an array of ``shape`` (bfloat16 as uint16 bits)."""
        if not self.shape:
            return self.flat[self.offset : self.offset + 1].reshape(())
        item = self.flat.itemsize
        return np.lib.stride_tricks.as_strided(
            self.flat[self.offset :],
            shape=self.shape,
            strides=tuple(s * item for s in self.strides),
            writeable=False,
        )

    def nonfinite(self) -> int:
        """Number of NaN or infinite values (0 for integer tensors)."""
        if self.dtype not in _FLOAT_DTYPES or math.prod(self.shape) == 0:
            return 0
        v = self.values()
        if self.dtype == "bfloat16":
            return int(np.count_nonzero((v & 0x7F80) == 0x7F80))
        return int(v.size - np.count_nonzero(np.isfinite(v)))


def _fmt(shape: Iterable[int]) -> str:
    shape = tuple(shape)
    return f"({shape[0]},)" if len(shape) == 1 else str(shape)


# ---------------------------------------------------------------------------- safetensors
def _read_safetensors(data: bytes) -> dict[str, _TensorView]:
    """Tensors of a safetensors file, viewed in place once the header passed the checks of
    :func:`.containers.read_safetensors_header` (header length bound, dtype, shape and
    offsets consistent and tiling the data)."""
    if len(data) < 8:
        raise ValueError("Not a weights file: too short for safetensors or a torch zip.")
    (n,) = struct.unpack("<Q", data[:8])
    limits = current_limits()
    if n > len(data) - 8 and n <= limits.max_header_bytes:
        raise ValueError(
            "Not a weights file: expected safetensors (8-byte header length + JSON header) "
            "or a torch.save zip file."
        )
    try:
        entries, body = read_safetensors_header(data, limits)
    except DecodeError as e:
        raise ValueError(str(e)) from e
    return {
        name: _TensorView(e.shape, e.dtype, np.frombuffer(body[e.begin : e.end], e.np_dtype), 0,
                          _contiguous_strides(e.shape))
        for name, e in entries.items()
    }


def _check_zip_sizes(data: bytes) -> None:
    """A torch.save zip stores its members uncompressed: refuse one whose members declare
    more bytes than the file holds (a deflate bomb), before any member is read."""
    try:
        zip_central_directory(data, current_limits())
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (DecodeError, zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ValueError(f"Not a valid torch.save zip file ({e}).") from e
    declared = sum(i.file_size for i in infos)
    if declared > len(data):
        raise ValueError(
            f"The .pt zip's members declare {declared:,} bytes, more than the {len(data):,} "
            f"bytes of the file; torch.save writes them uncompressed. Re-save with torch.save "
            f"or use safetensors."
        )


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides: list[int] = []
    acc = 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(strides))


# ---------------------------------------------------------------------------- torch zip
def _read_torch_zip(data: bytes) -> dict[str, _TensorView]:
    _check_zip_sizes(data)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, ValueError) as e:
        raise ValueError(f"Not a valid torch.save zip file ({e}).") from e
    pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkls) != 1:
        raise ValueError(
            "A zip file that is not a torch.save file (no <name>/data.pkl); save "
            "model.state_dict() with torch.save, or use safetensors."
        )
    prefix = pkls[0][: -len("data.pkl")]
    order = "little"
    if f"{prefix}byteorder" in names:
        order = archive.read(f"{prefix}byteorder").decode("ascii", "replace").strip()
    root = symbolic_unpickle(archive.read(pkls[0]))
    if not isinstance(root, dict):
        raise ValueError("The .pt file does not hold a dict; save model.state_dict().")
    out: dict[str, _TensorView] = {}
    storages: dict[str, np.ndarray] = {}
    for name, ref in root.items():
        if not isinstance(name, str) or not isinstance(ref, TensorRef):
            raise ValueError(
                f"The .pt file holds {name!r} -> {type(ref).__name__.lstrip('_')}, not a "
                f"tensor: it looks like a checkpoint, not a state_dict. Save "
                f"model.state_dict() itself."
            )
        st = ref.storage
        if st.key not in storages:
            entry = f"{prefix}data/{st.key}"
            if entry not in names:
                raise ValueError(f"Not a valid torch.save file: storage {st.key} is missing.")
            np_dtype = "<u2" if st.np_dtype == "bits16" else st.np_dtype
            if np_dtype not in ("i1", "u1", "?"):
                np_dtype = ("<" if order == "little" else ">") + np_dtype.lstrip("<")
            raw = archive.read(entry)
            flat = np.frombuffer(raw, dtype=np_dtype)
            if flat.size < st.numel:
                raise ValueError(f"Not a valid torch.save file: storage {st.key} is truncated.")
            storages[st.key] = flat
        flat = storages[st.key]
        if len(ref.shape) != len(ref.strides) or any(s < 0 for s in (*ref.shape, *ref.strides)):
            raise ValueError(f"Not a valid state_dict: tensor {name!r} has a bad shape or stride.")
        last = ref.offset + sum(
            (s - 1) * st_ for s, st_ in zip(ref.shape, ref.strides, strict=True)
        )
        if math.prod(ref.shape) > 0 and (ref.offset < 0 or last >= flat.size):
            raise ValueError(f"Not a valid state_dict: tensor {name!r} lies outside its storage.")
        out[name] = _TensorView(ref.shape, st.dtype, flat, ref.offset, ref.strides)
    return out


# ---------------------------------------------------------------------------- public API
def _read(data: bytes) -> dict[str, _TensorView]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"Expected the weights file as bytes, got {type(data).__name__}.")
    data = bytes(data)
    if data[:4] == b"PK\x03\x04":
        return _read_torch_zip(data)
    if data[:2] == b"\x80\x02" and data[2:3] == b"\x8a":
        raise ValueError(
            "This is the legacy (pre-1.6) torch.save format, which is not accepted; "
            "re-save with a current torch.save (zip format) or use safetensors."
        )
    return _read_safetensors(data)


def inspect_weights(data: bytes) -> dict[str, tuple[tuple[int, ...], str]]:
    """Names, shapes and dtypes of the tensors in a weights file, without torch.

    Args:
        data: a safetensors file or a ``torch.save`` state_dict (zip format).

    Returns:
        ``{name: (shape, dtype)}`` in file order, dtype like ``"float32"``.

    Raises:
        ValueError: if the file is neither format, is malformed, or (``.pt``) its pickle
            references anything but tensors; the pickle is never executed.
        TypeError: if ``data`` is not bytes.
    """
    return {name: (t.shape, t.dtype) for name, t in _read(data).items()}


def _names(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return shown + more


def _problems(
    tensors: Mapping[str, _TensorView],
    expected: Mapping[str, tuple[int, ...]],
    optional: Mapping[str, tuple[int, ...]],
    *,
    check_values: bool,
    ordered: bool = True,
    order: list[str] | None = None,
) -> list[str]:
    problems: list[str] = []
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected and k not in optional]
    if missing:
        problems.append(f"missing tensors {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors {_names(unexpected)}")
    if missing or unexpected:
        present = {k: tuple(t.shape) for k, t in tensors.items()}
        if order:
            rank = {k: i for i, k in enumerate(order)}
            present = dict(sorted(present.items(), key=lambda kv: rank.get(kv[0], len(rank))))
        hint = mapping_hint(present, expected, optional, ordered=ordered or bool(order))
        if hint:
            problems.append(hint)
    for name, t in tensors.items():
        need = expected.get(name, optional.get(name))
        if need is None:
            continue
        if tuple(t.shape) != tuple(need):
            problems.append(
                f"tensor {name!r} has shape {_fmt(t.shape)}, the architecture needs {_fmt(need)}"
            )
            continue
        if name.endswith("num_batches_tracked"):
            if t.dtype in _FLOAT_DTYPES or t.dtype == "bool":
                problems.append(f"tensor {name!r} has dtype {t.dtype}, expected an integer")
            continue
        if t.dtype not in _FLOAT_DTYPES:
            problems.append(
                f"tensor {name!r} has dtype {t.dtype}; parameters must be floating point"
            )
            continue
        if check_values:
            bad = t.nonfinite()
            if bad:
                problems.append(f"tensor {name!r} has {bad} NaN or infinite values")
    return problems


def check_weights(
    data: bytes,
    expected_shapes: Mapping[str, tuple[int, ...]],
    *,
    buffer_shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> None:
    """Check that a weights file matches an architecture, without torch.

    Every name of ``expected_shapes`` must be present with that shape and a floating
    dtype and finite values; names of ``buffer_shapes`` (batch-norm statistics) may be
    present (they default to fresh statistics); any other name is an error.

    Args:
        data: the weights file (safetensors or ``torch.save`` zip).
        expected_shapes: parameter name -> shape, from :func:`.shapes.param_shapes`.
        buffer_shapes: optional buffer name -> shape, from :func:`.shapes.buffer_shapes`.

    Raises:
        ValueError: one message naming every missing and unexpected tensor and every
            mismatch, e.g. ``"tensor '0.weight' has shape (8, 4), the architecture
            needs (8, 3)"``.
    """
    problems = _problems(
        _read(data),
        expected_shapes,
        buffer_shapes or {},
        check_values=True,
        ordered=bytes(data[:4]) == b"PK\x03\x04",  # .pt keeps the module's order
        order=safetensors_order(data),
    )
    if problems:
        raise ValueError("; ".join(problems) + ".")


def load_weights(
    data: bytes,
    shapes: Mapping[str, tuple[int, ...]],
    *,
    buffer_shapes: Mapping[str, tuple[int, ...]] | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Load parameters and batch-norm buffers from a weights file (worker side, torch).

    safetensors files are read with ``safetensors.torch.load``; ``.pt`` files with
    ``torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")`` after the
    same symbolic check as :func:`check_weights`.

    Args:
        data: the weights file.
        shapes: parameter name -> shape; the result follows this order.
        buffer_shapes: buffer name -> shape; absent buffers get fresh statistics
            (running_mean 0, running_var 1, num_batches_tracked 0).
        device: where the tensors go.
        dtype: floating dtype of parameters and running statistics (default float32).

    Returns:
        ``(params, buffers)``.

    Raises:
        ValueError: as :func:`check_weights`, and if a value overflows ``dtype``.
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    buffer_shapes = dict(buffer_shapes or {})
    check_weights(data, shapes, buffer_shapes=buffer_shapes)
    raw = bytes(data)
    if raw[:4] == b"PK\x03\x04":
        loaded = torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
    else:
        from safetensors.torch import load as st_load

        loaded = st_load(raw)
    params: dict[str, torch.Tensor] = {}
    for name in shapes:
        t = loaded[name].to(device=device, dtype=dtype).contiguous()
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"Tensor {name!r} has values that overflow {dtype}.")
        params[name] = t
    buffers: dict[str, torch.Tensor] = {}
    for name, shape in buffer_shapes.items():
        if name.endswith("num_batches_tracked"):
            value = loaded.get(name, torch.zeros(shape, dtype=torch.long))
            buffers[name] = value.to(device=device, dtype=torch.long)
            continue
        if name in loaded:
            value = loaded[name]
        elif name.endswith("running_var"):
            value = torch.ones(shape)
        else:
            value = torch.zeros(shape)
        buffers[name] = value.to(device=device, dtype=dtype).contiguous()
    return params, buffers


def load_params(
    data: bytes,
    shapes: Mapping[str, tuple[int, ...]],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """Parameters of a weights file, in the order of ``shapes`` (worker side, torch).

    Args:
        data: the weights file (safetensors or ``torch.save`` zip).
        shapes: parameter name -> shape, from :func:`.shapes.param_shapes`.
        device: where the tensors go.
        dtype: their floating dtype (default float32).

    Returns:
        ``{name: tensor}``; the file must hold these names, and may hold batch-norm
        buffers (``running_mean``, ``running_var``, ``num_batches_tracked``) of layers
        that have parameters here, which are ignored.

    Raises:
        ValueError: as :func:`check_weights`.
    """
    present = _read(data)
    buffers = {
        name: t.shape
        for name, t in present.items()
        if name.rsplit(".", 1)[-1] in _BUFFER_LEAVES
        and f"{name.rsplit('.', 1)[0]}.weight" in shapes
    }
    params, _ = load_weights(data, shapes, buffer_shapes=buffers, device=device, dtype=dtype)
    return params
