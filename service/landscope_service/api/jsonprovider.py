"""Flask's JSON provider, with responses encoded by orjson.

Every answer of the API is a JSON document, and the job object of a submit echoes the
whole request: the standard library's encoder was one of the larger costs of a
submission (see benchmarks/results/api_under_load.md). orjson writes the same JSON
(keys sorted, compact) several times faster. Anything orjson refuses (an integer wider
than 64 bits, a type it does not know and ``default`` cannot turn into one) falls back
to Flask's own encoder, so no answer changes shape. Parsing stays with the standard
library: its errors are the ones the API documents (``malformed_json``), and the body's
nesting is bounded before any parser runs (``api.limits``).
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

__all__ = ["FastJSONProvider"]

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


class FastJSONProvider(DefaultJSONProvider):
    """:class:`DefaultJSONProvider` whose compact output comes from orjson."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        # Only the compact form Flask's responses ask for; indent (debug) and other
        # arguments go to the standard encoder.
        if not kwargs or kwargs == {"separators": (",", ":")}:
            try:
                return orjson.dumps(obj, default=self.default, option=_OPTIONS).decode()
            except (orjson.JSONEncodeError, TypeError):
                pass
        return super().dumps(obj, **kwargs)
