"""The exceptions of the SDK.

Every error the SDK raises derives from :class:`LandscopeError`. An HTTP error
answer (a ``application/problem+json`` document) becomes an :class:`APIError`
subclass chosen by :func:`status_error_class`; failures below HTTP (refused
connections, timeouts) become :class:`APIConnectionError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from landscope.types import Job

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "InvalidResponseError",
    "JobFailedError",
    "LandscopeError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "UnprocessableEntityError",
    "WaitTimeout",
    "api_error_from_response",
    "flatten_field_errors",
    "status_error_class",
]


class LandscopeError(Exception):
    """Root of every exception raised by the landscope SDK."""


class InvalidResponseError(LandscopeError):
    """The server answered something that does not follow the API contract.

    Attributes:
        response: the HTTP response, when there was one.
    """

    def __init__(self, message: str, response: requests.Response | None = None) -> None:
        super().__init__(message)
        self.response = response


class APIError(LandscopeError):
    """The API answered with an HTTP error status.

    Attributes:
        status: the HTTP status code.
        code: the problem's machine code (``validation_error``, ``not_found``, ...),
            or ``None`` when the body was not a problem document.
        detail: the problem's human sentence (or the reason phrase).
        errors: field path -> messages, nested like the request (400/422), else ``{}``.
        title: the problem's title.
        response: the HTTP response.
    """

    def __init__(
        self,
        status: int,
        code: str | None,
        detail: str,
        errors: Mapping[str, Any] | None = None,
        response: requests.Response | None = None,
        *,
        title: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.errors: Mapping[str, Any] = errors if errors is not None else {}
        self.title = title
        self.response = response
        super().__init__(self._message())

    def _message(self) -> str:
        head = f"HTTP {self.status}"
        if self.code:
            head += f" {self.code}"
        text = f"{head}: {self.detail}" if self.detail else head
        pairs = (f"{path}: {msg}" for path, msg in flatten_field_errors(self.errors))
        fields = "; ".join(pair for pair in pairs if pair not in self.detail)
        if fields:
            text += f" ({fields})"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_api_error,
            (type(self), self.status, self.code, self.detail, dict(self.errors), self.title),
        )


def _rebuild_api_error(
    cls: type[APIError],
    status: int,
    code: str | None,
    detail: str,
    errors: dict[str, Any],
    title: str | None,
) -> APIError:
    return cls(status, code, detail, errors, None, title=title)


class BadRequestError(APIError):
    """HTTP 400: the request is malformed."""


class AuthenticationError(APIError):
    """HTTP 401: the API key is missing or invalid."""


class PermissionDeniedError(APIError):
    """HTTP 403: the key may not do this."""


class NotFoundError(APIError):
    """HTTP 404: no such job, blob or artifact (for this tenant)."""


class ConflictError(APIError):
    """HTTP 409: e.g. ``job_finished`` or ``idempotency_in_progress``."""


class PayloadTooLargeError(APIError):
    """HTTP 413: the upload or request body is too large."""


class UnprocessableEntityError(APIError):
    """HTTP 422: the request is well formed but invalid; see ``errors``."""


class RateLimitError(APIError):
    """HTTP 429: too many requests."""


class InternalServerError(APIError):
    """HTTP 5xx: the service failed."""


class APIConnectionError(LandscopeError):
    """The request did not get an HTTP answer (refused, reset, DNS, TLS...)."""


class APITimeoutError(APIConnectionError):
    """The request timed out before an answer came."""


class WaitTimeout(LandscopeError, TimeoutError):  # noqa: N818 (the public name)
    """A job did not finish before the deadline given to ``wait``.

    Attributes:
        job: the job as last seen (still queued or running).
        timeout: the deadline, in seconds.
    """

    def __init__(self, job: Job, timeout: float) -> None:
        self.job = job
        self.timeout = timeout
        super().__init__(
            f"Job {job.id} is still {job.status} after {timeout:g} s "
            f"(stage {job.progress.stage!r}, {job.progress.fraction:.0%})."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.job, self.timeout))


class JobFailedError(LandscopeError):
    """A job ended ``failed`` or ``cancelled`` where a result was asked for.

    Attributes:
        job: the finished job; ``job.error`` says why it failed.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        if job.status == "cancelled":
            message = f"Job {job.id} was cancelled."
        elif job.error is not None:
            message = f"Job {job.id} failed: {job.error.code}: {job.error.message}"
        else:
            message = f"Job {job.id} ended {job.status}."
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.job,))


_STATUS_CLASSES: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIError]:
    """Map an HTTP error status to its exception class.

    Args:
        status: the HTTP status code (4xx or 5xx).

    Returns:
        The matching :class:`APIError` subclass; :class:`InternalServerError` for any
        5xx and :class:`APIError` itself for a status without a dedicated class.
    """
    if status >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status, APIError)


def flatten_field_errors(errors: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Flatten nested field errors to ``(dotted.path, message)`` pairs.

    Args:
        errors: the ``errors`` member of a problem: a mapping of field name to a list
            of messages or to a nested mapping (list items are keyed by index).
        prefix: the path so far.

    Yields:
        ``("model.architecture.hidden", "Must be a list of positive integers.")``.
    """
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield from flatten_field_errors(value, path)
    elif isinstance(errors, list | tuple):
        for index, item in enumerate(errors):
            if isinstance(item, str):
                yield (prefix or "request", item)
            else:
                yield from flatten_field_errors(item, f"{prefix}.{index}" if prefix else str(index))
    elif errors is not None:
        yield (prefix or "request", str(errors))


def api_error_from_response(response: requests.Response) -> APIError:
    """Build the exception for an HTTP error answer.

    Reads the ``application/problem+json`` body when there is one; any other body
    gives an error whose detail is the start of the body or the reason phrase.

    Args:
        response: an answer with a 4xx or 5xx status.

    Returns:
        An instance of the class :func:`status_error_class` picks for the status.
    """
    status = response.status_code
    cls = status_error_class(status)
    code: str | None = None
    title: str | None = None
    errors: Mapping[str, Any] = {}
    detail = ""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        code = body.get("code") if isinstance(body.get("code"), str) else None
        title = body.get("title") if isinstance(body.get("title"), str) else None
        raw_detail = body.get("detail")
        detail = raw_detail if isinstance(raw_detail, str) else ""
        raw_errors = body.get("errors")
        if isinstance(raw_errors, Mapping):
            errors = raw_errors
        if not detail:
            detail = title or ""
    if not detail:
        text = response.text.strip() if body is None else ""
        detail = text[:200] if text else (response.reason or "")
    return cls(status, code, detail, errors, response, title=title)
