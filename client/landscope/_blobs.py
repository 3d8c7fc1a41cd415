"""``client.blobs``: upload files (weights, data) and read their metadata."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from landscope._exceptions import NotFoundError
from landscope._http import Transport, path_segment
from landscope._torch import state_dict_to_safetensors
from landscope.spec import ModelSpec
from landscope.types import Blob

__all__ = ["Blobs"]

Uploadable = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]


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

    def upload(self, source: Uploadable) -> Blob:
        """Upload a file; the same content always gets the same id.

        Args:
            source: a path (``str`` or ``Path``), the bytes themselves, or a binary
                file object opened for reading (streamed, rewound on retries).

        Returns:
            The blob; pass ``blob.id`` (or the blob) as weights or data.

        Raises:
            FileNotFoundError: the path does not exist.
            PayloadTooLargeError: the server refuses the size.
        """
        headers = {"Content-Type": "application/octet-stream"}
        if isinstance(source, bytes | bytearray | memoryview):
            response = self._transport.request(
                "POST", "/v1/blobs", content=bytes(source), headers=headers
            )
        elif isinstance(source, str | os.PathLike):
            with Path(source).open("rb") as f:
                response = self._transport.request("POST", "/v1/blobs", content=f, headers=headers)
        else:
            response = self._transport.request("POST", "/v1/blobs", content=source, headers=headers)
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
