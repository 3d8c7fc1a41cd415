"""Bounded readers of uploaded container files: ``.npz`` (a zip of ``.npy``) and safetensors.

Every size is read from the file's headers and checked against :class:`DecodeLimits`
*before* anything is allocated or decompressed, so a small file that declares a huge
payload (a "bomb") costs a few kilobytes and a few milliseconds to refuse:

* ``.npz``: the zip's end-of-central-directory record is read first (the central
  directory's size bounds how many entries ``zipfile`` will build); then each wanted
  member's declared uncompressed size, then its ``.npy`` header (dtype, shape, order),
  and only when ``numel * itemsize`` plus the header equals the declared size and the
  numbers fit the limits is the array read, in chunks into one preallocated buffer
  (``zipfile`` never inflates past a member's declared size).
* safetensors: the 8-byte header length is bounded before the JSON header is parsed;
  every entry's dtype, shape and offsets must agree, and the offsets must tile the data
  section exactly (as the safetensors specification requires), so the byte total is the
  file's own size. The data are then viewed in place, never copied.

No torch here: the API uses these readers at submit time and the worker again before
it builds tensors.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import struct
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SAFETENSORS_DTYPES",
    "DecodeError",
    "DecodeLimits",
    "NpyMember",
    "SafetensorsEntry",
    "current_limits",
    "npz_member_names",
    "read_npz_arrays",
    "read_npz_headers",
    "read_safetensors_header",
    "zip_central_directory",
]


class DecodeError(ValueError):
    """A container file is malformed or declares more than the limits allow."""


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds checked from headers before any data are allocated.

    Attributes:
        max_values: numbers in one data set (``x`` and ``y`` together);
            ``LANDSCOPE_MAX_DATA_VALUES``.
        max_header_bytes: largest safetensors JSON header and largest zip central
            directory; ``LANDSCOPE_MAX_FILE_HEADER_BYTES``.
        max_npy_header_bytes: largest ``.npy`` header (numpy's own default).
    """

    max_values: int = 16_777_216
    max_header_bytes: int = 8 * 1024 * 1024
    max_npy_header_bytes: int = 10_000


def current_limits(environ: Mapping[str, str] | None = None) -> DecodeLimits:
    """The limits of this process, from the ``LANDSCOPE_*`` settings (defaults otherwise).

    Only the variables of these limits are read (and validated by the same parsers as
    :func:`landscope_service.settings.load_settings`), so this is cheap to call per file.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for attr, var, parse in _limit_settings():
        if var in env:
            values[attr] = parse(var, env[var])
    return DecodeLimits(**values)


@functools.cache
def _limit_settings() -> tuple[tuple[str, str, Callable[[str, str], Any]], ...]:
    """``(DecodeLimits attribute, environment variable, parser)`` of each limit, read once
    from the settings' field table."""
    from dataclasses import fields

    from ..settings import Settings

    wanted = {"max_data_values": "max_values", "max_file_header_bytes": "max_header_bytes"}
    return tuple((wanted[f.name], f.metadata["env"], f.metadata["parse"])
                 for f in fields(Settings) if f.name in wanted)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


# ---------------------------------------------------------------------------- zip / npz
_EOCD = struct.Struct("<4s4H2LH")  # signature, disk, cd disk, entries here, entries, size, offset
_EOCD_SIG = b"PK\x05\x06"


def zip_central_directory(raw: bytes | memoryview, limits: DecodeLimits) -> tuple[int, int]:
    """``(entries, central directory bytes)`` of a zip, read from its last record.

    Raises:
        DecodeError: no end-of-central-directory record, a ZIP64 archive (never needed
            below the body limit), or a central directory larger than
            ``limits.max_header_bytes``.
    """
    view = memoryview(raw)
    tail_start = max(0, len(view) - (_EOCD.size + 65_535))
    pos = bytes(view[tail_start:]).rfind(_EOCD_SIG)
    if pos < 0 or tail_start + pos + _EOCD.size > len(view):
        raise DecodeError("Not a zip file (no end-of-central-directory record).")
    start = tail_start + pos
    _sig, _disk, _cd_disk, _here, entries, cd_size, _cd_offset, _comment = _EOCD.unpack_from(
        view, start
    )
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:
        raise DecodeError("ZIP64 archives are not accepted; save with numpy.savez.")
    if cd_size > limits.max_header_bytes or cd_size > start:
        raise DecodeError(
            f"The zip's central directory declares {_mib(cd_size)}, above the limit of "
            f"{_mib(limits.max_header_bytes)} (LANDSCOPE_MAX_FILE_HEADER_BYTES)."
        )
    return int(entries), int(cd_size)


@dataclass(frozen=True)
class NpyMember:
    """One ``.npy`` member of an ``.npz``, as its headers declare it."""

    name: str
    info: zipfile.ZipInfo
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    fortran_order: bool
    header_bytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _open_zip(raw: bytes | memoryview, limits: DecodeLimits) -> zipfile.ZipFile:
    zip_central_directory(raw, limits)
    try:
        return zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DecodeError(f"Not a readable zip file ({e}).") from e


def _npy_header(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, limits: DecodeLimits
) -> NpyMember:
    fmt = np.lib.format
    try:
        with zf.open(info) as fh:
            major, _minor = fmt.read_magic(fh)
            reader = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
            if major not in (1, 2, 3):
                raise ValueError(f"unknown .npy format version {major}")
            if major == 3:
                reader = fmt.read_array_header_2_0
            shape, fortran_order, dtype = reader(fh, max_header_size=limits.max_npy_header_bytes)
            header_bytes = fh.tell()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError) as e:
        raise DecodeError(f"Array {name!r}: not a readable .npy header ({e}).") from e
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise DecodeError(f"Array {name!r} is an object array; object arrays are refused.")
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise DecodeError(
            f"Array {name!r} has dtype {dtype}; data must be integers or floating point."
        )
    shape = tuple(int(s) for s in shape)
    declared = math.prod(shape) * dtype.itemsize
    if header_bytes + declared != info.file_size:
        raise DecodeError(
            f"Array {name!r}: its header declares shape {shape} of {dtype} "
            f"({_mib(declared)}), but the zip member holds {_mib(info.file_size)}."
        )
    return NpyMember(name, info, dtype, shape, bool(fortran_order), header_bytes)


def npz_member_names(raw: bytes | memoryview, limits: DecodeLimits) -> list[str]:
    """The array names of an ``.npz`` (``x`` for ``x.npy``), from its zip directory only.

    Raises:
        DecodeError: as :func:`zip_central_directory`, or an unreadable zip.
    """
    with _open_zip(raw, limits) as zf:
        return [n[: -len(".npy")] if n.endswith(".npy") else n for n in zf.namelist()]


def read_npz_headers(
    raw: bytes | memoryview, names: Iterable[str], limits: DecodeLimits
) -> dict[str, NpyMember]:
    """The declared dtype and shape of the members ``names`` (absent ones are left out).

    Reads only the zip directory and the first bytes of each wanted member.

    Raises:
        DecodeError: as :func:`zip_central_directory`; an unreadable zip or header; an
            object or non-numeric dtype; a header that disagrees with the member's size.
    """
    zf = _open_zip(raw, limits)
    with zf:
        infos = {i.filename: i for i in zf.infolist()}
        out: dict[str, NpyMember] = {}
        for name in names:
            info = infos.get(f"{name}.npy") or infos.get(name)
            if info is not None:
                out[name] = _npy_header(zf, info, name, limits)
        return out


def read_npz_arrays(
    raw: bytes | memoryview, names: tuple[str, ...], limits: DecodeLimits
) -> dict[str, np.ndarray]:
    """Read the members ``names`` after their headers passed the limits.

    The numbers of all the wanted members together must be at most
    ``limits.max_values``; each array is then read (and inflated) chunk by chunk into one
    buffer of exactly its declared size. Members not named are never read.

    Raises:
        DecodeError: as :func:`read_npz_headers`, if the members hold more than
            ``limits.max_values`` numbers, or if a member's data are truncated or corrupt.
    """
    members = read_npz_headers(raw, names, limits)
    total = sum(m.numel for m in members.values())
    if total > limits.max_values:
        shapes = ", ".join(f"{m.name} {m.shape} {m.dtype}" for m in members.values())
        raise DecodeError(
            f"The file declares {total:,} numbers ({shapes}), above the limit of "
            f"{limits.max_values:,} (LANDSCOPE_MAX_DATA_VALUES); nothing was decoded."
        )
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        for name, m in members.items():
            try:
                with zf.open(m.info) as fh:
                    out[name] = np.lib.format.read_array(
                        fh, allow_pickle=False, max_header_size=limits.max_npy_header_bytes
                    )
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError) as e:
                raise DecodeError(f"Array {name!r}: its data are unreadable ({e}).") from e
    return out


# ---------------------------------------------------------------------------- safetensors
SAFETENSORS_DTYPES: dict[str, tuple[str, str]] = {
    # safetensors name: (torch-style name, numpy dtype; "<u2" holds bfloat16 bit patterns)
    "F64": ("float64", "<f8"),
    "F32": ("float32", "<f4"),
    "F16": ("float16", "<f2"),
    "BF16": ("bfloat16", "<u2"),
    "I64": ("int64", "<i8"),
    "I32": ("int32", "<i4"),
    "I16": ("int16", "<i2"),
    "I8": ("int8", "i1"),
    "U8": ("uint8", "u1"),
    "BOOL": ("bool", "?"),
}


@dataclass(frozen=True)
class SafetensorsEntry:
    """One tensor of a safetensors file, as its header declares it."""

    name: str
    st_dtype: str
    dtype: str  # torch-style name, e.g. "float32"
    np_dtype: str  # numpy dtype of the raw bytes ("<u2" for bfloat16)
    shape: tuple[int, ...]
    begin: int  # offsets into the data section
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def array(self, body: memoryview) -> np.ndarray:
        """The values, viewed in place in the data section (no copy), shaped."""
        flat = np.frombuffer(body[self.begin : self.end], dtype=self.np_dtype)
        return flat.reshape(self.shape)


def _int_list(value: Any, what: str, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise DecodeError(
            f"Not a valid safetensors file: tensor {name!r} has a {what} that is not a "
            f"list of non-negative integers."
        )
    return tuple(value)


def read_safetensors_header(
    raw: bytes | memoryview, limits: DecodeLimits
) -> tuple[dict[str, SafetensorsEntry], memoryview]:
    """Parse and check a safetensors header; return its entries and the data section.

    Checks, before any tensor is touched: the header length is at most
    ``limits.max_header_bytes`` and fits in the file; the header is a JSON object of
    ``{name: {"dtype", "shape", "data_offsets"}}`` (plus ``__metadata__``) with known
    dtypes; every ``end - begin == numel * itemsize``; and the offsets tile the data
    section exactly, without gaps or overlaps.

    Raises:
        DecodeError: naming what is wrong.
    """
    view = memoryview(raw)
    if len(view) < 8:
        raise DecodeError("Not a safetensors file: shorter than its 8-byte header length.")
    (n,) = struct.unpack_from("<Q", view, 0)
    if n > limits.max_header_bytes:
        raise DecodeError(
            f"The safetensors header declares {_mib(n)}, above the limit of "
            f"{_mib(limits.max_header_bytes)} (LANDSCOPE_MAX_FILE_HEADER_BYTES)."
        )
    if n > len(view) - 8:
        raise DecodeError(
            f"Not a safetensors file: the header declares {n} bytes but the file has "
            f"{len(view) - 8} after the length."
        )
    try:
        header = json.loads(bytes(view[8 : 8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise DecodeError(f"Not a valid safetensors file: unreadable JSON header ({e}).") from e
    if not isinstance(header, dict):
        raise DecodeError("Not a valid safetensors file: the header is not a JSON object.")
    body = view[8 + n :]
    entries: dict[str, SafetensorsEntry] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise DecodeError(
                f"Not a valid safetensors file: bad header entry for {name!r} (needs "
                f"dtype, shape and data_offsets)."
            )
        st_dtype = entry["dtype"]
        if st_dtype not in SAFETENSORS_DTYPES:
            raise DecodeError(
                f"tensor {name!r} has dtype {st_dtype}, which is not supported; use "
                f"float32, float64, float16 or bfloat16."
            )
        shape = _int_list(entry["shape"], "shape", name)
        offsets = _int_list(entry["data_offsets"], "data_offsets", name)
        if len(offsets) != 2:
            raise DecodeError(
                f"Not a valid safetensors file: tensor {name!r} needs data_offsets [begin, end]."
            )
        begin, end = offsets
        dtype, np_dtype = SAFETENSORS_DTYPES[st_dtype]
        if end < begin or end - begin != math.prod(shape) * np.dtype(np_dtype).itemsize:
            raise DecodeError(
                f"Not a valid safetensors file: tensor {name!r} has inconsistent offsets "
                f"for shape {shape} and dtype {st_dtype}."
            )
        entries[name] = SafetensorsEntry(name, st_dtype, dtype, np_dtype, shape, begin, end)
    position = 0
    for t in sorted(entries.values(), key=lambda t: (t.begin, t.end)):
        if t.begin != position:
            raise DecodeError(
                f"Not a valid safetensors file: tensor {t.name!r} starts at byte {t.begin} "
                f"of the data, expected {position} (offsets must tile the data exactly)."
            )
        position = t.end
    if position != len(body):
        raise DecodeError(
            f"Not a valid safetensors file: the tensors cover {position} bytes of data but "
            f"the file holds {len(body)}."
        )
    return entries, body
