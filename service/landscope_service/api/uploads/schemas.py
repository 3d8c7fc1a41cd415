from __future__ import annotations

import re

from marshmallow import Schema, ValidationError, fields, validate

_HEX = re.compile(r"^(sha256:)?[0-9a-f]{64}$")


def _sha256(value: str) -> None:
    if not _HEX.match(value):
        raise ValidationError("Expected 64 lower-case hex digits (optionally 'sha256:' first), "
                              "the SHA-256 of the whole file.")


class UploadCreateSchema(Schema):
    """A chunked upload to open: the file's size, the size of its parts and (recommended)
    its SHA-256. Creating the same declared file again resumes the open upload."""

    size = fields.Integer(strict=True, required=True, validate=validate.Range(min=1),
                          metadata={"description": "Bytes of the whole file."})
    part_size = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1),
                               metadata={"description": "Bytes of every part but the last "
                                                        "(at least 1 MiB, at most "
                                                        "LANDSCOPE_MAX_BODY_BYTES); default "
                                                        "16 MiB or the body limit if smaller."})
    sha256 = fields.String(load_default=None, validate=_sha256,
                           metadata={"description": "The whole file's SHA-256: completing "
                                                    "checks it, and it lets a later create "
                                                    "resume this upload."})


class UploadSchema(Schema):
    """An open chunked upload."""

    id = fields.String()
    size = fields.Integer()
    part_size = fields.Integer()
    parts = fields.Integer(metadata={"description": "Number of parts; part n is bytes "
                                                    "[n * part_size, min(size, (n + 1) * "
                                                    "part_size))."})
    received = fields.List(fields.Integer(), metadata={"description": "Parts received whole."})
    missing = fields.List(fields.Integer(), metadata={"description": "Parts still to send."})
    part_sha256 = fields.Dict(keys=fields.String(), values=fields.String(),
                              metadata={"description": "SHA-256 of each part received."})
    sha256 = fields.String(allow_none=True)
    created_at = fields.String()
    expires_at = fields.String(metadata={"description": "When the upload expires unless a "
                                                        "part arrives before (each part "
                                                        "renews it by LANDSCOPE_UPLOAD_TTL_S)."})


class PartSchema(Schema):
    """A part received whole."""

    upload_id = fields.String()
    n = fields.Integer()
    size = fields.Integer()
    sha256 = fields.String(metadata={"description": "SHA-256 of the part's bytes."})
    received = fields.Integer(metadata={"description": "Parts of the upload received so far."})
    parts = fields.Integer()
