from __future__ import annotations

from marshmallow import Schema, fields


class BlobSchema(Schema):
    """An uploaded file, addressed by the SHA-256 of its bytes."""

    id = fields.String(metadata={"description": "sha256:<hex>"})
    size = fields.Integer()
    created_at = fields.String()
