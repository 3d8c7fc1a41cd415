"""One error shape for every failure: RFC 9457 ``application/problem+json``.

    {"type": "https://landscope.dev/problems/validation_error", "title": "Unprocessable Entity",
     "status": 422, "code": "validation_error", "detail": "...", "errors": {...field paths...}}
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, NoReturn

from flask import Response, json
from flask_smorest import abort as _smorest_abort
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

from ..jobs.errors import JobError

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ProblemSchema",
    "abort",
    "handle_redis_down",
    "problem_response",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_DOWN_S = 5  # Retry-After of a 503 while Redis is unreachable
log = logging.getLogger("landscope.api")

_DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ProblemSchema(Schema):
    """An error (RFC 9457 problem details)."""

    type = fields.String(metadata={"description": "URI naming the problem type."})
    title = fields.String(metadata={"description": "Short summary of the HTTP status."})
    status = fields.Integer(metadata={"description": "HTTP status code."})
    code = fields.String(metadata={"description": "Machine-readable error code."})
    detail = fields.String(metadata={"description": "What went wrong and how to fix it."})
    errors = fields.Dict(
        metadata={"description": "Field path -> messages, nested like the request."}
    )


def problem_response(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    errors: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The one error body; ``errors`` (when given) is always an object."""
    code = code or _DEFAULT_CODES.get(status, "error")
    body: dict[str, Any] = {
        "type": f"https://landscope.dev/problems/{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if errors:
        body["errors"] = _as_object(errors)
    resp = Response(json.dumps(body), status=status, mimetype=PROBLEM_MEDIA_TYPE)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def abort(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    errors: Any = None,
    headers: dict[str, str] | None = None,
) -> NoReturn:
    """Stop the request with a problem response."""
    kwargs: dict[str, Any] = {"message": detail, "problem_code": code}
    if errors:
        kwargs["errors"] = errors
    if headers:
        kwargs["headers"] = headers
    _smorest_abort(status, **kwargs)
    raise AssertionError("unreachable")  # pragma: no cover


def _flatten_location(errors: Any) -> dict[str, Any]:
    """webargs nests messages under the location ("json", "query"): drop that level.

    The result is always an object (field path -> messages): messages about the body as a
    whole (malformed JSON, a list where an object belongs) go under ``body``.
    """
    if isinstance(errors, dict) and len(errors) == 1:
        (loc, inner), = errors.items()
        if loc in ("json", "query", "headers", "form", "files", "view_args", "path"):
            if isinstance(inner, dict):
                return inner
            return {"body" if loc == "json" else loc: inner}
    return _as_object(errors)


def _as_object(errors: Any) -> dict[str, Any]:
    if isinstance(errors, dict):
        return errors
    return {"body": errors if isinstance(errors, list) else [str(errors)]}


def _summary(errors: Any, prefix: str = "") -> str:
    """First few field paths for the human sentence."""
    paths: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, list) and node and all(isinstance(m, str) for m in node):
            paths.append(f"{path or 'body'}: {node[0]}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}.{i}")

    walk(errors, prefix)
    if not paths:
        return ""
    more = f" (and {len(paths) - 3} more)" if len(paths) > 3 else ""
    return "; ".join(paths[:3]) + more


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    errors = _flatten_location(errors) if errors else None
    code = data.get("problem_code")
    if data.get("message"):
        detail = str(data["message"])
    elif errors:
        detail = "The request is invalid: " + _summary(errors) + "."
    elif status == 413:
        detail = "The request body is too large; see LANDSCOPE_MAX_BODY_BYTES."
    elif status == 404:
        detail = "No such resource."
    else:
        detail = error.description or HTTPStatus(status).phrase
    headers = dict(data.get("headers") or {})
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    if status == 400 and errors and "JSON" in _summary(errors):
        code = code or "malformed_json"
    return problem_response(status, detail, code=code, errors=errors, headers=headers)


def handle_job_error(error: JobError) -> Response:
    """A refusal of the job logic (``jobs/``), with its status and Retry-After."""
    return problem_response(error.status, error.detail, code=error.code, errors=error.errors,
                            headers=error.headers())


def handle_redis_down(error: Exception) -> Response:
    """Redis unreachable (refused, timed out, reset): 503 ``unavailable``, retry later."""
    log.warning("redis unavailable: %s", error)
    return problem_response(503, "The job store is unavailable; retry shortly.",
                            code="unavailable", headers={"Retry-After": str(RETRY_AFTER_DOWN_S)})


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error")
    return problem_response(500, "An unexpected error occurred; it was logged.")
