"""Streamed data sets: memory-mapped blobs read one batch at a time, with a transform.

A data spec is streamed when it has a ``transform`` or lists several ``blobs``::

    {"blob": "sha256:...", "format": "npz", "transform": {"mean": [...], "std": [...]}}
    {"blobs": ["sha256:...", "sha256:..."], "format": "safetensors"}

* Files: uncompressed ``.npz`` (``np.savez``, members stored) and ``.safetensors``, each
  holding ``x`` and ``y``. Their arrays are found from the headers alone and mapped
  (``np.memmap`` on the store's file, or views of the bytes for the Redis store); nothing
  is decoded until a batch is read.
* Several blobs are one data set, concatenated in the order given (samples of the same
  shape and dtype family).
* ``x`` may be uint8, float16, float32 or float64; ``transform`` gives
  ``x' = (x - mean) / std`` per channel (axis 1 of images, the last axis of flat inputs),
  applied to each batch on the worker's device after conversion to the job's dtype.
* Each batch is checked as it is read (finite values, class labels in range); the file's
  declared shapes are checked against the architecture at submit time.
"""

from __future__ import annotations

import io
import json
import mmap
import struct
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from marshmallow import ValidationError

if TYPE_CHECKING:
    import torch

__all__ = [
    "STREAMED_KINDS",
    "MappedSource",
    "Transform",
    "inspect_streamed",
    "is_streamed",
    "map_arrays",
    "open_source",
]

STREAMED_KINDS = ("evaluate", "hessian_spectrum")
"""Kinds whose every pass over the data goes through ``Problem.batches``."""

BlobFile = Path | bytes
"""A blob's file in the local store (mapped) or its bytes (viewed)."""

_X_DTYPES = (np.uint8, np.float16, np.float32, np.float64)
_SAFE_DTYPES = {"U8": np.uint8, "F16": np.float16, "F32": np.float32, "F64": np.float64,
                "I64": np.int64, "I32": np.int32}


def is_streamed(data_spec: dict[str, Any]) -> bool:
    """Whether this data spec is read in batches from mapped files."""
    return "transform" in data_spec or "blobs" in data_spec


def blob_ids(data_spec: dict[str, Any]) -> list[str]:
    return list(data_spec["blobs"]) if "blobs" in data_spec else [data_spec["blob"]]


def _error(path: Sequence[str | int], message: str) -> ValidationError:
    out: Any = [message]
    for key in reversed(path):
        out = {key: out}
    return ValidationError(out)


# ---------------------------------------------------------------------- mapping
def _view(blob: BlobFile, dtype: np.dtype[Any], shape: tuple[int, ...], offset: int,
          fortran: bool = False) -> np.ndarray:
    count = int(np.prod(shape)) if shape else 1
    order = "F" if fortran else "C"
    buffer: Any = blob
    if isinstance(blob, Path):
        if count == 0:
            return np.empty(shape, dtype=dtype)
        with blob.open("rb") as fh:
            buffer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    flat: Any = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order=order)  # type: ignore[no-any-return]


def mapping_of(arr: np.ndarray) -> mmap.mmap | None:
    """The file mapping an array views (None for bytes or in-memory arrays)."""
    base: Any = arr
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
        if isinstance(base, memoryview):
            base = base.obj
    return base if isinstance(base, mmap.mmap) else None


def _size(blob: BlobFile) -> int:
    return blob.stat().st_size if isinstance(blob, Path) else len(blob)


def _open(blob: BlobFile) -> Any:
    return blob.open("rb") if isinstance(blob, Path) else io.BytesIO(blob)


def _npz_arrays(blob: BlobFile) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with _open(blob) as fh:
        try:
            archive = zipfile.ZipFile(fh)
        except zipfile.BadZipFile as e:
            raise ValueError(f"not an npz (zip) file: {e}") from None
        with archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if name not in ("x", "y"):
                    continue
                if info.compress_type != zipfile.ZIP_STORED:
                    raise ValueError(f"{info.filename} is compressed; a streamed data set "
                                     f"needs np.savez (not savez_compressed) so it can be "
                                     f"memory-mapped.")
                fh.seek(info.header_offset)
                local = fh.read(30)
                if local[:4] != b"PK\x03\x04":
                    raise ValueError(f"{info.filename}: bad zip local header.")
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                start = info.header_offset + 30 + name_len + extra_len
                fh.seek(start)
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise ValueError(f"{info.filename}: unknown .npy version {version}.")
                if dtype.hasobject:
                    raise ValueError(f"{info.filename} holds Python objects; send numbers.")
                offset = fh.tell()
                need = offset + int(np.prod(shape)) * dtype.itemsize
                if need > start + info.file_size or need > _size(blob):
                    raise ValueError(f"{info.filename} declares more bytes than it holds.")
                out[name] = _view(blob, dtype, tuple(shape), offset, fortran)
    return out


def _safetensors_arrays(blob: BlobFile) -> dict[str, np.ndarray]:
    with _open(blob) as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError("not a safetensors file (shorter than its header length).")
        (n,) = struct.unpack("<Q", head)
        if n > 100 * 1024 * 1024 or 8 + n > _size(blob):
            raise ValueError(f"safetensors header of {n} bytes is larger than the file allows.")
        try:
            header = json.loads(fh.read(n))
        except ValueError as e:
            raise ValueError(f"safetensors header is not JSON: {e}") from None
    out: dict[str, np.ndarray] = {}
    for name in ("x", "y"):
        entry = header.get(name)
        if not isinstance(entry, dict):
            continue
        dtype = _SAFE_DTYPES.get(str(entry.get("dtype")))
        if dtype is None:
            raise ValueError(f"{name}: dtype {entry.get('dtype')!r} is not one of "
                             f"{', '.join(_SAFE_DTYPES)}.")
        shape = tuple(int(d) for d in entry["shape"])
        begin, end = (int(o) for o in entry["data_offsets"])
        if end - begin != int(np.prod(shape)) * np.dtype(dtype).itemsize or \
                8 + n + end > _size(blob):
            raise ValueError(f"{name}: data_offsets do not match its shape and dtype.")
        out[name] = _view(blob, np.dtype(dtype), shape, 8 + n + begin)
    return out


def map_arrays(blob: BlobFile, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of one file, mapped (nothing decoded).

    Raises:
        ValueError: not a streamable file of this format, or ``x``/``y`` missing.
    """
    readers: dict[str, Callable[[BlobFile], dict[str, np.ndarray]]] = {
        "npz": _npz_arrays, "safetensors": _safetensors_arrays}
    if fmt not in readers:
        raise ValueError(f"format {fmt!r} cannot be streamed: use npz (uncompressed) or "
                         f"safetensors.")
    arrays = readers[fmt](blob)
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise ValueError(f"the file has no array named {' or '.join(missing)}.")
    return arrays["x"], arrays["y"]


# ---------------------------------------------------------------------- transform
@dataclass(frozen=True)
class Transform:
    """``x' = (x - mean) / std`` per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def parse(cls, spec: dict[str, Any] | None,
              sample_shape: tuple[int, ...]) -> Transform | None:
        """Check a ``transform`` object against one sample's shape.

        Raises:
            ValidationError: under ``data.transform``, naming the fix.
        """
        if spec is None:
            return None
        channels = sample_shape[0] if len(sample_shape) >= 2 else sample_shape[-1]
        where = "axis 1 (channels) of image inputs" if len(sample_shape) >= 2 else \
            "the last axis of flat inputs"
        mean, std = spec.get("mean"), spec.get("std")
        errors: dict[str, list[str]] = {}
        for key, values in (("mean", mean), ("std", std)):
            if not isinstance(values, list) or len(values) not in (1, channels):
                errors[key] = [f"Give 1 or {channels} numbers (one per channel, {where}); "
                               f"got {values!r}."]
        if not errors and any(not (float(s) > 0) for s in std):  # type: ignore[union-attr]
            errors["std"] = ["Every std must be > 0."]
        if errors:
            raise ValidationError({"data": {"transform": errors}})
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))  # type: ignore[union-attr]

    def apply(self, x: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
        """Normalise a batch ``(B, C, ...)`` or ``(B, ..., C)`` in its own dtype/device
        (in place when ``inplace``: no temporaries the size of the batch)."""
        import torch

        shape = [1] * x.ndim
        axis = 1 if x.ndim >= 3 else x.ndim - 1
        shape[axis] = -1
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).reshape(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).reshape(shape)
        if inplace:
            return x.sub_(mean).div_(std)
        return (x - mean) / std


# ---------------------------------------------------------------------- the source
def _check_pair(x: np.ndarray, y: np.ndarray, *, loss: str, sample_shape: tuple[int, ...],
                output_dim: int, path: Sequence[str | int]) -> None:
    if x.dtype.type not in _X_DTYPES:
        raise _error(path, f"x has dtype {x.dtype}; a streamed data set takes uint8, "
                           f"float16, float32 or float64.")
    if tuple(x.shape[1:]) != sample_shape:
        raise _error(path, f"x has samples of shape {tuple(x.shape[1:])}; the architecture "
                           f"takes {sample_shape}.")
    if x.shape[0] != y.shape[0]:
        raise _error(path, f"x has {x.shape[0]} samples, y has {y.shape[0]}.")
    if loss == "cross_entropy":
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise _error(path, f"y must be (N,) integer class labels for cross_entropy, got "
                               f"{y.dtype} of shape {tuple(y.shape)}.")
    elif tuple(y.shape[1:]) != (output_dim,) or not np.issubdtype(y.dtype, np.number):
        raise _error(path, f"y must be (N, {output_dim}) numbers for mse, got {y.dtype} of "
                           f"shape {tuple(y.shape)}.")


@dataclass
class MappedSource:
    """Mapped files read as one data set, a batch at a time (a core ``BatchSource``)."""

    parts: list[tuple[np.ndarray, np.ndarray]]
    loss: str
    output_dim: int
    transform: Transform | None = None

    def __post_init__(self) -> None:
        self._starts = np.cumsum([0] + [len(x) for x, _ in self.parts])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _release(self) -> None:
        if not hasattr(mmap, "MADV_DONTNEED"):
            return
        for x, y in self.parts:
            for arr in (x, y):
                m = mapping_of(arr)
                if m is not None:
                    m.madvise(mmap.MADV_DONTNEED)

    def _slice(self, which: int, start: int, stop: int) -> np.ndarray:
        pieces = []
        for i, pair in enumerate(self.parts):
            lo, hi = int(self._starts[i]), int(self._starts[i + 1])
            a, b = max(start, lo), min(stop, hi)
            if a < b:
                pieces.append(np.asarray(pair[which][a - lo:b - lo]))
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def read(self, start: int, stop: int, *, device: torch.device,
             dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples ``[start, stop)`` on ``device``: x in ``dtype``, transformed.

        Raises:
            ValueError: a value in the batch is not finite or a label is out of range
                (naming the samples).
        """
        import torch

        # One batch copied out of the mapping (the pages are read here, once); then the
        # mapping's pages leave this process (they stay in the OS page cache), so its
        # memory holds the batch, not every page read so far.
        x_np = np.array(self._slice(0, start, stop), order="C")
        y_np = np.array(self._slice(1, start, stop), order="C")
        self._release()
        x = torch.from_numpy(x_np).to(device=device).to(dtype)
        if x_np.dtype.kind == "f" and not bool(torch.isfinite(x).all()):
            raise ValueError(f"data: x has values that are not finite in {dtype} among "
                             f"samples {start}-{stop - 1}.")
        if self.transform is not None:
            x = self.transform.apply(x, inplace=True)  # x is this batch's own copy
        if self.loss == "cross_entropy":
            y = torch.from_numpy(y_np.astype(np.int64, copy=False)).to(device)
            if bool(((y < 0) | (y >= self.output_dim)).any()):
                raise ValueError(f"data: a class label among samples {start}-{stop - 1} is "
                                 f"outside 0..{self.output_dim - 1}.")
        else:
            y = torch.from_numpy(y_np).to(device=device).to(dtype)
            if not bool(torch.isfinite(y).all()):
                raise ValueError(f"data: y has values that are not finite in {dtype} among "
                                 f"samples {start}-{stop - 1}.")
        return x, y


def open_source(data_spec: dict[str, Any], blob_file: Callable[[str], BlobFile], *,
                loss: str, input_shape: tuple[int, ...], output_dim: int) -> MappedSource:
    """The mapped data set of a streamed data spec.

    Args:
        data_spec: the validated ``data`` object (:func:`is_streamed` is true).
        blob_file: a blob's file path (local store) or bytes; ``KeyError`` if unknown.
        loss: ``"mse"`` or ``"cross_entropy"``.
        input_shape: one sample's shape.
        output_dim: r.

    Raises:
        ValidationError: nested like the request (``data.blobs.1``, ``data.transform``).
    """
    fmt = data_spec.get("format", "npz")
    listed = "blobs" in data_spec
    parts = []
    for i, blob_id in enumerate(blob_ids(data_spec)):
        path: tuple[str | int, ...] = ("data", "blobs", i) if listed else ("data", "blob")
        try:
            blob = blob_file(blob_id)
        except KeyError:
            raise _error(path, f"Unknown blob {blob_id!r}: upload it first (POST /v1/blobs "
                               f"or /v1/uploads).") from None
        try:
            x, y = map_arrays(blob, fmt)
        except ValueError as e:
            raise _error(path, f"{fmt} file: {e}") from None
        _check_pair(x, y, loss=loss, sample_shape=input_shape, output_dim=output_dim,
                    path=path)
        parts.append((x, y))
    if parts and len({p[0].dtype for p in parts}) > 1:
        raise _error(("data", "blobs"), "The blobs' x arrays have different dtypes: "
                                        "concatenated files must agree.")
    transform = Transform.parse(data_spec.get("transform"), input_shape)
    source = MappedSource(parts, loss, output_dim, transform)
    if len(source) == 0:
        raise _error(("data",), "The data set is empty: the files hold no samples.")
    return source


def inspect_streamed(data_spec: dict[str, Any], blob_file: Callable[[str], BlobFile], *,
                     loss: str, input_shape: tuple[int, ...], output_dim: int) -> int:
    """Submit-time check of a streamed data spec from the files' headers; returns N."""
    return len(open_source(data_spec, blob_file, loss=loss, input_shape=input_shape,
                           output_dim=output_dim))
