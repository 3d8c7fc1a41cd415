"""``/v1/blobs``: content-addressed uploads (weights, data)."""

from __future__ import annotations

from typing import Any

from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from ...jobs.store import iso
from ...storage.blobs import BlobQuotaError
from ..auth import require_tenant
from ..errors import abort
from ..extensions import services
from .schemas import BlobSchema

blp = Blueprint("blobs", __name__, url_prefix="/v1/blobs",
                description="Upload weights and data files; refer to them by id in jobs.")
blp.before_request(require_tenant)


def _render(meta: dict[str, Any]) -> dict[str, Any]:
    return {"id": meta["id"], "size": meta["size"], "created_at": iso(meta["created_at"]),
            "expires_at": iso(meta.get("expires_at"))}


@blp.route("")
class Blobs(MethodView):
    @blp.response(201, BlobSchema)
    @blp.alt_response(200, schema=BlobSchema, description="The same bytes were uploaded before.")
    @blp.doc(requestBody={
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string",
                                                             "format": "binary"}}},
    })
    def post(self) -> Any:
        """Upload a file (raw body). The id is the SHA-256 of the bytes.

        A blob expires LANDSCOPE_BLOB_TTL_S after its last use (``expires_at``); uploading
        the same bytes again or a job reading it renews it. Beyond the API key's cap of
        stored bytes (LANDSCOPE_TENANT_BLOB_BYTES) the answer is 429 with Retry-After.
        """
        data = request.get_data(cache=False)
        if not data:
            abort(400, "The body is empty: send the file's bytes as the request body.",
                  errors={"body": ["Must not be empty."]})
        try:
            meta, created = services().blobs.put(g.tenant, data)
        except BlobQuotaError as e:
            abort(429, str(e), code="blob_quota_exceeded",
                  headers={"Retry-After": str(e.retry_after_s)},
                  errors={"body": [f"{e.used} of {e.cap} bytes are in use; this file has "
                                   f"{e.size}."]})
        return _render(meta), 201 if created else 200


@blp.route("/<string:blob_id>")
class BlobById(MethodView):
    @blp.response(200, BlobSchema)
    def get(self, blob_id: str) -> dict[str, Any]:
        """A blob's size, upload time and expiry."""
        meta = services().blobs.meta(g.tenant, blob_id)
        if meta is None:
            abort(404, f"No blob {blob_id!r} for this API key.")
        return _render(meta)

    @blp.response(204)
    def delete(self, blob_id: str) -> tuple[str, int]:
        """Delete a blob. Finished jobs keep their results; queued jobs that need it fail."""
        if not services().blobs.delete(g.tenant, blob_id):
            abort(404, f"No blob {blob_id!r} for this API key.")
        return "", 204
