"""Errors of the job domain that the API turns into problem responses.

The job logic (``jobs/``) never imports Flask: it raises these, and the API maps each to
its HTTP status with one handler. ``errors`` is always an object (field path ->
messages), never a list.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConflictError",
    "InvalidRequestError",
    "JobError",
    "TooManyRequestsError",
    "UnavailableError",
]


class JobError(Exception):
    """Base: ``status`` is the HTTP status the API answers with."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.errors = errors
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class InvalidRequestError(JobError):
    """The request cannot run as sent (422)."""

    status = 422
    code = "validation_error"


class ConflictError(JobError):
    status = 409
    code = "conflict"


class TooManyRequestsError(JobError):
    """A per-tenant limit; ``retry_after`` says when to try again (429)."""

    status = 429
    code = "rate_limited"


class UnavailableError(JobError):
    """Redis or the queue cannot be reached (503)."""

    status = 503
    code = "unavailable"
