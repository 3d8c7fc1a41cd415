"""``client.blobs``: upload files (weights, data) and read their metadata."""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, cast

from landscope._exceptions import APIConnectionError, APITimeoutError, NotFoundError
from landscope._http import Transport, path_segment
from landscope._progress import ByteProgress
from landscope._torch import state_dict_to_safetensors
from landscope.spec import ModelSpec
from landscope.types import Blob

__all__ = ["Blobs"]

Uploadable = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]

DEFAULT_PART_BYTES = 16 * 1024 * 1024
"""Files larger than this go in parts of this size (``POST /v1/uploads``)."""
_READ = 1024 * 1024
logger = logging.getLogger("landscope")


class _Slice(io.RawIOBase):
    """Bytes ``[start, start + length)`` of a seekable file, as a file of their own (so a
    part is streamed, and rewound when its request is retried)."""

    def __init__(self, f: IO[bytes], start: int, length: int) -> None:
        super().__init__()
        self._f, self._start, self._length, self._pos = f, start, length, 0

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + offset))
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        left = self._length - self._pos
        n = left if size is None or size < 0 else min(size, left)
        if n <= 0:
            return b""
        self._f.seek(self._start + self._pos)
        chunk = self._f.read(n)
        self._pos += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class Blobs:
    """The blob resource (``client.blobs``).

    Args:
        transport: the client's transport.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._known: set[str] = set()

    def ensure(self, data: bytes) -> str:
        """Upload ``data`` unless the service already holds it for this tenant.

        Blob ids are the SHA-256 of the content, so the id is known before uploading:
        a ``GET`` tells whether the bytes are there, and ids seen by this client are
        not asked about again.

        Returns:
            The blob id.
        """
        blob_id = ModelSpec({}, bytes(data)).weights_id
        if blob_id in self._known:
            return blob_id
        try:
            self.get(blob_id)
        except NotFoundError:
            blob_id = self.upload(bytes(data)).id
        self._known.add(blob_id)
        return blob_id

    def upload(
        self,
        source: Uploadable,
        *,
        part_size: int = DEFAULT_PART_BYTES,
        progress: bool = False,
        part_attempts: int = 5,
    ) -> Blob:
        """Upload a file; the same content always gets the same id.

        A file larger than ``part_size`` goes in parts (``POST /v1/uploads``): its SHA-256
        is computed first (a file the service already holds is not sent again), each part
        is streamed from the file and checked against the SHA-256 the service reports, a
        part whose connection drops is sent again, and calling ``upload`` again after a
        failure resumes the open upload, sending only the parts still missing.

        Args:
            source: a path (``str`` or ``Path``), the bytes themselves, or a binary
                file object opened for reading (streamed, rewound on retries).
            part_size: bytes per part (at least 1 MiB, at most the service's body limit,
                ``LANDSCOPE_MAX_BODY_BYTES``); files up to this size go in one request.
            progress: show a bar of the bytes sent (tqdm if installed) for a file in parts.
            part_attempts: times one part is sent before giving up (each send itself
                retried by the client's ``max_retries``).

        Returns:
            The blob; pass ``blob.id`` (or the blob) as weights or data.

        Raises:
            FileNotFoundError: the path does not exist.
            PayloadTooLargeError: the server refuses the size.
            APIConnectionError: a part could not be sent ``part_attempts`` times (call
                ``upload`` again to resume).
        """
        if part_size < 1:
            raise ValueError(f"part_size must be positive, got {part_size}.")
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
            if len(data) > part_size:
                return self._upload_parts(io.BytesIO(data), len(data), part_size, progress,
                                          part_attempts)
            return self._post(data)
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            size = path.stat().st_size
            with path.open("rb") as f:
                if size > part_size:
                    return self._upload_parts(f, size, part_size, progress, part_attempts,
                                              label=path.name)
                return self._post(f)
        if source.seekable():
            start = source.tell()
            size = source.seek(0, io.SEEK_END) - start
            source.seek(start)
            if size > part_size:
                part_view = cast(IO[bytes], _Slice(source, start, size))
                return self._upload_parts(part_view, size, part_size, progress, part_attempts)
        return self._post(source)

    def _post(self, content: bytes | IO[bytes]) -> Blob:
        response = self._transport.request(
            "POST", "/v1/blobs", content=content,
            headers={"Content-Type": "application/octet-stream"})
        return Blob.from_json(self._transport.json_of(response))

    def _upload_parts(self, f: IO[bytes], size: int, part_size: int, progress: bool,
                      part_attempts: int, label: str = "upload") -> Blob:
        whole = hashlib.sha256()
        part_hashes: list[str] = []
        f.seek(0)
        for offset in range(0, size, part_size):
            part = hashlib.sha256()
            left = min(part_size, size - offset)
            while left:
                chunk = f.read(min(_READ, left))
                if not chunk:
                    raise ValueError(f"The file ended before its {size} bytes.")
                part.update(chunk)
                whole.update(chunk)
                left -= len(chunk)
            part_hashes.append(part.hexdigest())
        blob_id = f"sha256:{whole.hexdigest()}"
        try:
            return self.get(blob_id)  # held already: a use, renewing it
        except NotFoundError:
            pass
        upload = self._transport.json_of(self._transport.request(
            "POST", "/v1/uploads",
            json={"size": size, "part_size": part_size, "sha256": blob_id}))
        upload_id = str(upload["id"])
        path = f"/v1/uploads/{path_segment(upload_id)}"
        bar = ByteProgress(size, label) if progress else None
        try:
            done = {int(n) for n, h in upload["part_sha256"].items()
                    if h == part_hashes[int(n)]}
            if bar is not None:
                bar.advance(sum(min(part_size, size - n * part_size) for n in done))
            for _round in range(part_attempts):
                for n in range(len(part_hashes)):
                    if n in done:
                        continue
                    length = min(part_size, size - n * part_size)
                    try:
                        answer = self._transport.json_of(self._transport.request(
                            "PUT", f"{path}/parts/{n}",
                            content=cast(IO[bytes], _Slice(f, n * part_size, length)),
                            headers={"Content-Type": "application/octet-stream"}))
                    except (APIConnectionError, APITimeoutError) as e:
                        logger.info("part %d of %s failed (%s); sending it again later",
                                    n, upload_id, e)
                        continue
                    if answer.get("sha256") == part_hashes[n]:
                        done.add(n)
                        if bar is not None:
                            bar.advance(length)
                if len(done) == len(part_hashes):
                    break
            missing = sorted(set(range(len(part_hashes))) - done)
            if missing:
                raise APIConnectionError(
                    f"Parts {missing[:10]} of upload {upload_id} could not be sent in "
                    f"{part_attempts} attempts; call upload() again to resume it.")
            response = self._transport.request("POST", f"{path}/complete")
        finally:
            if bar is not None:
                bar.close()
        return Blob.from_json(self._transport.json_of(response))

    def get(self, blob_id: str | Blob) -> Blob:
        """The metadata of a blob.

        Args:
            blob_id: ``sha256:<hex>`` (or a :class:`~landscope.Blob`).

        Raises:
            NotFoundError: no such blob for this tenant.
        """
        ref = blob_id.id if isinstance(blob_id, Blob) else blob_id
        return Blob.from_json(self._transport.get_json(f"/v1/blobs/{path_segment(ref)}"))

    def delete(self, blob_id: str | Blob) -> None:
        """Delete a blob of this tenant (the bytes go once no tenant refers to them).

        Raises:
            NotFoundError: no such blob for this tenant.
        """
        ref = blob_id.id if isinstance(blob_id, Blob) else blob_id
        self._transport.request("DELETE", f"/v1/blobs/{path_segment(ref)}")

    def upload_state_dict(
        self,
        state_dict: Mapping[str, Any] | Any,
        spec: Mapping[str, Any] | ModelSpec | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Blob:
        """Upload PyTorch weights as safetensors (needs ``pip install landscope[torch]``).

        Args:
            state_dict: parameter name -> tensor, or a ``torch.nn.Module``. For an
                ``mlp`` architecture, the state dict of the equivalent
                ``torch.nn.Sequential`` uploads as it is.
            spec: the architecture the weights are for (an architecture object, a
                ``model`` object or a :class:`~landscope.ModelSpec`). When given, the
                names are mapped onto the architecture's: a ``module.`` prefix
                (DataParallel) is dropped, and names that differ but whose shapes pair
                up one to one in order are renamed (the mapping the service proposes in
                its 422).
            metadata: optional string pairs stored in the file header.

        Returns:
            The blob, to pass as ``model(..., weights=blob)``.

        Raises:
            ImportError: torch is not installed.
            ValueError: ``spec`` is given and the names cannot be mapped.
        """
        if spec is not None:
            from landscope._names import map_state_dict

            state_dict = map_state_dict(state_dict, spec)
        return self.upload(state_dict_to_safetensors(state_dict, metadata))
