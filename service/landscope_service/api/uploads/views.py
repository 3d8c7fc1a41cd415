"""``/v1/uploads``: resumable chunked uploads of large files, completed into blobs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from ...jobs.store import iso
from ...storage.blobs import BlobQuotaError
from ...storage.multipart import SLICE, part_sink
from ...storage.uploads import Upload, UploadError, UploadService
from ..auth import require_tenant
from ..blobs.schemas import BlobSchema
from ..errors import abort
from ..extensions import services
from .schemas import PartSchema, UploadCreateSchema, UploadSchema

blp = Blueprint("uploads", __name__, url_prefix="/v1/uploads",
                description="Large files in parts: create, PUT each part (again if one "
                            "failed), complete into a blob.")
blp.before_request(require_tenant)

DEFAULT_PART_BYTES = 16 * 1024 * 1024


def _uploads() -> UploadService:
    sv = services()
    return UploadService(sv.redis, part_sink(sv.store), sv.blobs,
                         max_blob_bytes=sv.settings.max_blob_bytes,
                         max_part_bytes=sv.settings.max_body_bytes,
                         ttl_s=sv.settings.upload_ttl_s)


def _render(upload: Upload) -> dict[str, Any]:
    return {"id": upload.id, "size": upload.size, "part_size": upload.part_size,
            "parts": upload.part_count, "received": sorted(upload.parts),
            "missing": upload.missing,
            "part_sha256": {str(n): h for n, h in sorted(upload.parts.items())},
            "sha256": None if upload.sha256 is None else f"sha256:{upload.sha256}",
            "created_at": iso(upload.created_at), "expires_at": iso(upload.expires_at)}


def render_blob(meta: dict[str, Any]) -> dict[str, Any]:
    return {"id": meta["id"], "size": meta["size"], "created_at": iso(meta["created_at"]),
            "expires_at": iso(meta.get("expires_at"))}


def _unknown(upload_id: str) -> Any:
    abort(404, f"No open upload {upload_id!r} for this API key: it was completed, deleted, "
               f"or expired (an upload expires LANDSCOPE_UPLOAD_TTL_S after its last part); "
               f"create it again.", code="upload_not_found")


def _quota(e: BlobQuotaError) -> Any:
    abort(429, str(e), code="blob_quota_exceeded", headers={"Retry-After": str(e.retry_after_s)},
          errors={"size": [f"{e.used} of {e.cap} bytes are in use or reserved by open "
                           f"uploads; this file has {e.size}."]})


def _invalid(e: UploadError) -> Any:
    code = {413: "payload_too_large", 409: "upload_incomplete", 404: "part_not_found"}.get(
        e.status, "invalid_upload")
    abort(e.status, str(e), code=code, errors={e.field: [str(e)]})


@blp.route("")
class Uploads(MethodView):
    @blp.arguments(UploadCreateSchema)
    @blp.response(201, UploadSchema)
    @blp.alt_response(200, schema=UploadSchema,
                      description="An open upload of the same declared file: resume it.")
    def post(self, args: dict[str, Any]) -> Any:
        """Open a chunked upload (for files above one request body).

        Then PUT each part to ``/v1/uploads/{id}/parts/{n}`` (any order; a part sent
        again replaces it) and POST ``/v1/uploads/{id}/complete``. The declared size counts
        against the API key's blob cap from now on (429 when it would pass it); a size over
        LANDSCOPE_MAX_BLOB_BYTES answers 413.
        """
        settings = services().settings
        part_size = args["part_size"] or min(DEFAULT_PART_BYTES, settings.max_body_bytes)
        sha = args["sha256"].removeprefix("sha256:") if args["sha256"] else None
        try:
            upload, created = _uploads().create(g.tenant, args["size"], part_size, sha)
        except UploadError as e:
            _invalid(e)
        except BlobQuotaError as e:
            _quota(e)
        return _render(upload), 201 if created else 200


@blp.route("/<string:upload_id>")
class UploadById(MethodView):
    @blp.response(200, UploadSchema)
    def get(self, upload_id: str) -> dict[str, Any]:
        """An open upload: which parts arrived (with their SHA-256) and which are missing."""
        upload = _uploads().get(g.tenant, upload_id)
        if upload is None:
            _unknown(upload_id)
        return _render(upload)

    @blp.response(204)
    def delete(self, upload_id: str) -> tuple[str, int]:
        """Abandon an upload and remove its parts."""
        if not _uploads().abort(g.tenant, upload_id):
            _unknown(upload_id)
        return "", 204


def _body() -> Iterator[bytes]:
    stream = request.stream
    while True:
        chunk = stream.read(SLICE)
        if not chunk:
            return
        yield chunk


@blp.route("/<string:upload_id>/parts/<int:n>")
class Part(MethodView):
    @blp.response(200, PartSchema)
    @blp.doc(requestBody={
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string",
                                                             "format": "binary"}}},
    })
    def put(self, upload_id: str, n: int) -> dict[str, Any]:
        """Send part ``n`` (raw body of exactly its length); streamed to the store, never
        held whole. A part cut short does not count; send it again."""
        try:
            upload, digest = _uploads().put_part(g.tenant, upload_id, n, _body())
        except KeyError:
            _unknown(upload_id)
        except UploadError as e:
            _invalid(e)
        return {"upload_id": upload.id, "n": n, "size": upload.part_length(n),
                "sha256": digest, "received": len(upload.parts), "parts": upload.part_count}


@blp.route("/<string:upload_id>/complete")
class Complete(MethodView):
    @blp.response(201, BlobSchema)
    @blp.alt_response(200, schema=BlobSchema, description="The same bytes were uploaded before.")
    def post(self, upload_id: str) -> Any:
        """Assemble the parts into a blob whose id is the SHA-256 of the whole file (409
        with the missing parts if some have not arrived; 422 if the bytes differ from the
        declared sha256). The upload is gone afterwards."""
        try:
            meta, created = _uploads().complete(g.tenant, upload_id)
        except KeyError:
            _unknown(upload_id)
        except UploadError as e:
            _invalid(e)
        except BlobQuotaError as e:
            _quota(e)
        return render_blob(meta), 201 if created else 200
