"""Small files that declare huge payloads ("bombs"), for the decoding-bound tests.

Each is built in well under a second, without ever holding the declared payload.
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np

__all__ = ["csv_wide", "npy_header", "npz_bomb", "npz_declaring", "safetensors_raw"]

_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_EOCD = struct.Struct("<4s4H2LH")


def npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    """A version 1.0 ``.npy`` header for ``shape``/``dtype`` (numpy's own writer)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def _zeros_deflate(n: int) -> bytes:
    """A raw deflate stream of ``n`` zero bytes, built from one repeated block (the
    stream of 2 GiB of zeros is about 2 MB, like a real zip bomb's)."""
    chunk = 1 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(b"\0" * chunk) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(b"\0" * chunk) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(b"\0" * chunk) + c.flush(zlib.Z_FULL_FLUSH)
    assert block == again, "deflate blocks of zeros differ; cannot build the bomb"
    full, rest = divmod(n, chunk)
    parts = [first] if full else []
    parts += [block] * max(full - 1, 0)
    parts.append(c.compress(b"\0" * rest) + c.flush(zlib.Z_FINISH))
    return b"".join(parts)


def _zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip of ``(name, stored bytes, method, uncompressed size, crc)``."""
    out = io.BytesIO()
    central = []
    for name, payload, method, usize, crc in members:
        offset = out.tell()
        fname = name.encode()
        out.write(_LOCAL.pack(b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(payload), usize,
                              len(fname), 0))
        out.write(fname)
        out.write(payload)
        central.append(_CENTRAL.pack(b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc,
                                     len(payload), usize, len(fname), 0, 0, 0, 0, 0, offset)
                       + fname)
    cd_offset = out.tell()
    cd = b"".join(central)
    out.write(cd)
    out.write(_EOCD.pack(b"PK\x05\x06", 0, 0, len(members), len(members), len(cd), cd_offset, 0))
    return out.getvalue()


def npz_bomb(values_each: int = (2**31 - 4096) // 8) -> bytes:
    """An .npz whose x and y declare ``values_each`` float64 each (default: 4 GiB in all),
    really deflated (about 4 MB, as the file of the issue), with true sizes and CRCs of
    the headers' bytes only (nothing reads that far)."""
    members = []
    for name in ("x", "y"):
        header = npy_header((values_each,))
        usize = len(header) + values_each * 8
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
        body = _zeros_deflate(values_each * 8)
        members.append((f"{name}.npy", head + body, 8, usize, 0))
    return _zip(members)


def npz_declaring(shapes: dict[str, tuple[int, ...]], *, extra_bytes: int = 0) -> bytes:
    """A stored (uncompressed) .npz whose members hold only their .npy headers but whose
    zip entries declare the full sizes (plus ``extra_bytes``): a truncated bomb."""
    members = []
    for name, shape in shapes.items():
        header = npy_header(shape)
        usize = len(header) + int(np.prod(shape, dtype=object)) * 8 + extra_bytes
        members.append((f"{name}.npy", header, 0, usize, zlib.crc32(header)))
    return _zip(members)


def safetensors_raw(header: dict[str, object] | bytes, body: bytes = b"",
                    declared_len: int | None = None) -> bytes:
    """A safetensors file from a header (dict or raw JSON bytes) and a data section."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if declared_len is None else declared_len
    return struct.pack("<Q", n) + raw + body


def csv_wide(columns: int, rows: int = 1) -> bytes:
    """A csv with ``columns`` input columns plus ``y`` and ``rows`` rows of zeros."""
    header = b",".join(b"x%d" % i for i in range(columns)) + b",y\n"
    row = b"0," * columns + b"0\n"
    return header + row * rows
