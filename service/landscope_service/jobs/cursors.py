"""Opaque list cursors: ``(score, job id)`` of the last item of a page, base64url."""

from __future__ import annotations

import base64
import binascii

from .errors import InvalidRequestError

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(last: tuple[int, str]) -> str:
    return base64.urlsafe_b64encode(f"{last[0]}:{last[1]}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The position a cursor names; :class:`InvalidRequestError` for anything else."""
    try:
        score, _, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        return int(score), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequestError("Invalid cursor.",
                             errors={"cursor": ["Use next_cursor as returned."]}) from None
