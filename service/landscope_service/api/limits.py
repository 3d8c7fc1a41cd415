"""Request-body limits that no encoding bypasses, and a JSON nesting limit.

* Size: a body is refused with 413 when it is larger than its limit
  (``LANDSCOPE_MAX_JSON_BYTES`` for JSON bodies, ``LANDSCOPE_MAX_BODY_BYTES`` for uploads),
  whether it announces a ``Content-Length`` (refused before reading) or is sent
  ``Transfer-Encoding: chunked`` (refused as soon as one byte past the limit arrives).
  Werkzeug alone stops reading a chunked body *at* the limit and hands over the
  truncated bytes; here the stream is allowed one byte more, so a body that is larger is
  always seen as larger, never silently cut.
* Depth: a JSON body nested deeper than ``LANDSCOPE_MAX_JSON_DEPTH`` (arrays and objects)
  is refused with 400 ``json_too_deep`` before any parser recurses into it (Python's
  parser would otherwise raise ``RecursionError``, a 500). The depth is measured by a
  vectorised scan of the bytes, strings removed first.
"""

from __future__ import annotations

import re
from typing import Any, cast

import numpy as np
from flask import Flask, Request, current_app

from .errors import abort

__all__ = ["LimitedRequest", "install_body_limits", "json_depth"]

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


def json_depth(data: bytes, *, at_most: int | None = None) -> int:
    """The deepest nesting of arrays and objects in a JSON text (0 for a scalar).

    Brackets inside strings do not count. With ``at_most``, a text with fewer brackets
    than that returns early with a lower bound that is still ``<= at_most``.
    """
    brackets = data.count(b"[") + data.count(b"{")
    if at_most is not None and brackets <= at_most:
        return brackets
    if b'"' in data:
        data = _JSON_STRING.sub(b'""', data)
    steps = _OPEN[np.frombuffer(data, dtype=np.uint8)]
    if steps.size == 0:
        return 0
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


class LimitedRequest(Request):
    """A request whose body cannot be larger than its limit, however it is sent."""

    _depth_checked = False

    def body_limit(self) -> tuple[int, str]:
        """``(bytes, sentence for the 413)`` for this request."""
        limit, is_json = self.limit_info()
        s = current_app.extensions["landscope"].settings
        if is_json:
            return limit, (
                f"The JSON body is larger than {s.max_json_bytes} bytes "
                f"(LANDSCOPE_MAX_JSON_BYTES); upload large data as a blob (POST /v1/blobs) "
                f"and refer to it with data.blob."
            )
        return limit, (
            f"The request body is larger than {s.max_body_bytes} bytes "
            f"(LANDSCOPE_MAX_BODY_BYTES); send a smaller file."
        )

    def limit_info(self) -> tuple[int, bool]:
        """``(bytes, whether the JSON limit applies)``: what every request asks, without
        the 413's sentence (made only when a body is refused)."""
        s = current_app.extensions["landscope"].settings
        if self.is_json and not self.path.startswith("/v1/blobs"):
            return s.max_json_bytes, True
        return s.max_body_bytes, False

    @property
    def max_content_length(self) -> int | None:
        # One byte more than the limit: a chunked body that reaches it is too large.
        return self.limit_info()[0] + 1

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        raise AttributeError("The body limit comes from the settings "
                             "(LANDSCOPE_MAX_BODY_BYTES / LANDSCOPE_MAX_JSON_BYTES).")

    def get_data(  # type: ignore[override]
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> Any:
        data = super().get_data(cache=cache, as_text=False, parse_form_data=parse_form_data)
        if len(data) > self.limit_info()[0]:
            abort(413, self.body_limit()[1], code="payload_too_large")
        if self.is_json and not self._depth_checked:
            max_depth = current_app.extensions["landscope"].settings.max_json_depth
            if json_depth(data, at_most=max_depth) > max_depth:
                abort(400, f"The JSON body is nested deeper than {max_depth} levels "
                           f"(LANDSCOPE_MAX_JSON_DEPTH).", code="json_too_deep",
                      errors={"body": [f"Nest arrays and objects at most {max_depth} deep."]})
            self._depth_checked = True
        return data.decode("utf-8", "replace") if as_text else data


def install_body_limits(app: Flask) -> None:
    """Use :class:`LimitedRequest` and refuse an oversized ``Content-Length`` before reading."""
    app.request_class = LimitedRequest

    @app.before_request
    def _refuse_announced_oversize() -> None:
        from flask import request

        req = cast(LimitedRequest, request)
        if (req.content_length or 0) > req.limit_info()[0]:
            abort(413, req.body_limit()[1], code="payload_too_large")
