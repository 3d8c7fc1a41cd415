from __future__ import annotations

from marshmallow import Schema, fields


class BlobSchema(Schema):
    """An uploaded file, addressed by the SHA-256 of its bytes."""

    id = fields.String(metadata={"description": "sha256:<hex>"})
    size = fields.Integer()
    created_at = fields.String()
    expires_at = fields.String(
        allow_none=True,
        metadata={"description": "When the blob expires unless it is used (uploaded again or "
                                 "read by a job) before; every use moves it to "
                                 "LANDSCOPE_BLOB_TTL_S from then. Null: never."})
