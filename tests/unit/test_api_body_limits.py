"""Body limits that no transfer encoding bypasses, and the JSON nesting limit (real app,
private Redis, WSGI environ built by hand so that the body arrives without a
Content-Length, as gunicorn hands over a chunked body)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from landscope_service.api.limits import json_depth

from support import AUTH_A

MAX_BODY = 2 * 1024 * 1024  # the settings fixture's limits
MAX_JSON = 1024 * 1024


@pytest.mark.parametrize(("text", "depth"), [
    (b"1", 0),
    (b'"[[["', 0),
    (b"[]", 1),
    (b'{"a": [1, {"b": []}]}', 4),
    (b'["[[[[", "]]", {"k\\"[": ["\\\\"]}]', 3),
    (b"[" * 500 + b"]" * 500, 500),
    (b"[[],[[]],[]]", 3),
])  # fmt: skip
def test_json_depth_known_answers(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth
    assert json_depth(text) == max(0, _reference_depth(json.loads(text)))


def _reference_depth(value: Any) -> int:
    """Depth of a parsed value, iteratively (the reference the scan must agree with)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, depth + 1)
            stack.extend((v, depth + 1) for v in node)
    return deepest


def test_json_depth_early_exit_is_a_lower_bound() -> None:
    assert json_depth(b"[[1],[2],[3]]", at_most=10) <= 10
    assert json_depth(b"[" * 70 + b"]" * 70, at_most=64) == 70


def _chunked(http: Any, path: str, body: bytes, content_type: str) -> Any:
    """POST without Content-Length; the server (like gunicorn) terminates the stream."""
    return http.post(path, input_stream=io.BytesIO(body),
                     headers={**AUTH_A, "Content-Type": content_type,
                              "Transfer-Encoding": "chunked"},
                     environ_overrides={"wsgi.input_terminated": True})


def _problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)[:500]
    assert resp.mimetype == "application/problem+json"
    body: dict[str, Any] = resp.get_json()
    assert body["code"] == code, body
    return body


def test_chunked_blob_over_the_limit_is_413_and_nothing_is_stored(
        http: Any, redis_client: Any, settings: Any) -> None:
    body = b"a" * (MAX_BODY + 1)
    prob = _problem(_chunked(http, "/v1/blobs", body, "application/octet-stream"), 413,
                    "payload_too_large")
    assert "LANDSCOPE_MAX_BODY_BYTES" in prob["detail"]
    truncated = hashlib.sha256(body[:MAX_BODY]).hexdigest()
    assert http.get(f"/v1/blobs/sha256:{truncated}", headers=AUTH_A).status_code == 404
    assert list(redis_client.scan_iter("ls:blob:*")) == []
    stored = Path(settings.data_dir) / "blobs"
    assert not stored.exists() or not any(p.is_file() for p in stored.rglob("*"))


def test_chunked_blob_at_the_limit_is_stored_whole(http: Any) -> None:
    body = b"b" * MAX_BODY
    resp = _chunked(http, "/v1/blobs", body, "application/octet-stream")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["size"] == MAX_BODY
    assert resp.get_json()["id"] == "sha256:" + hashlib.sha256(body).hexdigest()


def test_chunked_json_over_the_limit_is_413_not_malformed(http: Any, redis_client: Any) -> None:
    body = json.dumps({"kind": "evaluate", "pad": "x" * MAX_JSON}).encode()
    prob = _problem(_chunked(http, "/v1/jobs", body, "application/json"), 413,
                    "payload_too_large")
    assert "LANDSCOPE_MAX_JSON_BYTES" in prob["detail"]
    assert redis_client.llen("cpu") == 0


def test_announced_oversize_json_refused_before_reading(http: Any) -> None:
    body = b'{"pad": "' + b"x" * MAX_JSON + b'"}'
    resp = http.post("/v1/jobs", data=body, headers={**AUTH_A,
                                                     "Content-Type": "application/json"})
    assert "LANDSCOPE_MAX_JSON_BYTES" in _problem(resp, 413, "payload_too_large")["detail"]


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
def test_json_nested_too_deep_is_400(http: Any, redis_client: Any, depth: int) -> None:
    body = b'{"kind": "evaluate", "metadata": ' + b"[" * depth + b"]" * depth + b"}"
    for send in (lambda: http.post("/v1/jobs", data=body, headers={
                     **AUTH_A, "Content-Type": "application/json"}),
                 lambda: _chunked(http, "/v1/jobs", body, "application/json")):
        prob = _problem(send(), 400, "json_too_deep")
        assert "LANDSCOPE_MAX_JSON_DEPTH" in prob["detail"] and "body" in prob["errors"]
    assert redis_client.llen("cpu") == 0


def test_json_at_the_depth_limit_reaches_validation(http: Any) -> None:
    inner = 64 - 1  # the outer object is one level
    body = b'{"kind": "evaluate", "metadata": ' + b"[" * inner + b"]" * inner + b"}"
    resp = http.post("/v1/jobs", data=body, headers={**AUTH_A,
                                                     "Content-Type": "application/json"})
    assert resp.status_code == 422, resp.get_json()  # parsed, then refused by the schema
