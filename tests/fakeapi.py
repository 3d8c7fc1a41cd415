"""A small in-process HTTP server that follows docs/api.md, for SDK tests that must inject
a server error (retries, backoff, timeouts, malformed answers).

Every other SDK and CLI test runs against the real app served in-process
(``tests/liveapi.py``). Test modules import this one as ``fakeapi`` (``tests`` is on
pytest's ``pythonpath``); ``tests/unit/test_sdk_fakeapi.py`` sends the same requests to
the fake and to the real app, so that tests built on the fake test the contract.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from landscope import Client
from landscope.kinds import KNOWN_KINDS

API_KEY = "test-key"
KINDS = KNOWN_KINDS  # the SDK's list, generated from openapi.json (the registry's kinds)
REQUEST_FIELDS = {
    "kind",
    "model",
    "data",
    "loss",
    "options",
    "device",
    "dtype",
    "seed",
    "batch_size",
    "metadata",
}
EVALUATE_RESULT = {
    "loss": 0.25,
    "grad_norm": 1.5,
    "num_params": 41,
    "num_samples": 16,
    "per_sample_loss": {"min": 0.01, "mean": 0.25, "max": 0.9},
    "theory": {"applies": ["smooth_loss"]},
}


def now_iso(offset: float = 0.0) -> str:
    """An RFC 3339 UTC timestamp with a Z, like the API's."""
    when = datetime.now(UTC) + timedelta(seconds=offset)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Injection:
    """A canned answer for the next ``times`` requests matching method and path."""

    method: str
    path: str
    status: int
    body: Any
    headers: dict[str, str]
    times: int
    delay: float = 0.0
    content_type: str = "application/problem+json"


@dataclass
class FakeAPI:
    """The fake service. Start with :meth:`start`; ``url`` is then its base URL."""

    api_key: str = API_KEY
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[str, tuple[bytes, dict[str, Any]]] = field(default_factory=dict)
    artifacts: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    idempotency: dict[str, tuple[Any, str]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    injections: list[Injection] = field(default_factory=list)
    scripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    on_submit: Callable[[dict[str, Any]], None] | None = None
    max_blob_size: int = 1 << 20
    url: str = ""
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- control -------------------------------------------------------------------

    def start(self) -> FakeAPI:
        """Serve on 127.0.0.1 and a free port, in a daemon thread."""
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def inject(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        delay: float = 0.0,
        content_type: str = "application/problem+json",
    ) -> None:
        """Answer the next ``times`` requests to ``method path`` with this instead."""
        if body is None and status >= 400:
            body = problem(status, "injected", f"Injected {status}.")
        self.injections.append(
            Injection(method, path, status, body, headers or {}, times, delay, content_type)
        )

    def add_job(self, **fields: Any) -> dict[str, Any]:
        """Create a job record directly (not through POST); returns it."""
        job = new_job(fields.pop("kind", "evaluate"), fields.pop("request", {}))
        job.update(fields)
        with self._lock:
            self.jobs[job["id"]] = job
        return job

    def script(self, job_id: str, *states: dict[str, Any]) -> None:
        """Apply one of ``states`` (field updates) to the job at each GET of it."""
        self.scripts[job_id] = list(states)

    def calls(self, method: str, path: str | None = None) -> list[Recorded]:
        """The recorded requests with this method (and path)."""
        return [r for r in self.requests if r.method == method and path in (None, r.path)]

    # -- routes --------------------------------------------------------------------

    def handle(self, rec: Recorded) -> tuple[int, Any, dict[str, str], str]:
        """Route one request; returns status, body, headers, content type."""
        chosen: Injection | None = None
        with self._lock:
            self.requests.append(rec)
            for inj in self.injections:
                if inj.times > 0 and inj.method == rec.method and inj.path == rec.path:
                    inj.times -= 1
                    chosen = inj
                    break
        if chosen is not None:
            if chosen.delay:
                time.sleep(chosen.delay)
            return chosen.status, chosen.body, chosen.headers, chosen.content_type
        if rec.path == "/healthz":
            return 200, {"status": "ok"}, {}, "application/json"
        if not rec.path.startswith("/v1/"):
            return error(404, "not_found", f"No route {rec.path}.")
        if rec.headers.get("authorization") != f"Bearer {self.api_key}":
            return error(401, "unauthorized", "Missing or invalid API key.")
        parts = rec.path.split("/")[2:]
        with self._lock:
            return self._route(rec, parts)

    def _route(self, rec: Recorded, parts: list[str]) -> tuple[int, Any, dict[str, str], str]:
        m = rec.method
        if parts == ["blobs"] and m == "POST":
            return self._upload(rec)
        if len(parts) == 2 and parts[0] == "blobs" and m == "GET":
            blob = self.blobs.get(parts[1])
            if blob is None:
                return error(404, "not_found", f"No blob {parts[1]}.")
            return 200, blob[1], {}, "application/json"
        if parts == ["jobs"] and m == "POST":
            return self._submit(rec)
        if parts == ["jobs"] and m == "GET":
            return self._list(rec)
        if len(parts) >= 2 and parts[0] == "jobs":
            job = self.jobs.get(parts[1])
            if job is None:
                return error(404, "not_found", f"No job {parts[1]}.")
            if len(parts) == 2 and m == "GET":
                steps = self.scripts.get(job["id"])
                if steps:
                    job.update(steps.pop(0))
                return 200, job, {}, "application/json"
            if parts[2:] == ["cancel"] and m == "POST":
                return self._cancel(job)
            if len(parts) == 4 and parts[2] == "artifacts" and m == "GET":
                art = self.artifacts.get((job["id"], parts[3]))
                if art is None:
                    return error(404, "not_found", f"No artifact {parts[3]}.")
                return 200, art[0], {}, art[1]
        return error(404, "not_found", f"No route {m} {rec.path}.")

    def _upload(self, rec: Recorded) -> tuple[int, Any, dict[str, str], str]:
        if len(rec.body) > self.max_blob_size:
            return error(413, "payload_too_large", f"Blobs are limited to {self.max_blob_size} B.")
        blob_id = "sha256:" + hashlib.sha256(rec.body).hexdigest()
        if blob_id in self.blobs:
            return 200, self.blobs[blob_id][1], {}, "application/json"
        meta = {"id": blob_id, "size": len(rec.body), "created_at": now_iso()}
        self.blobs[blob_id] = (rec.body, meta)
        return 201, meta, {}, "application/json"

    def _submit(self, rec: Recorded) -> tuple[int, Any, dict[str, str], str]:
        try:
            body = json.loads(rec.body)
        except ValueError:
            return error(400, "bad_request", "The body is not JSON.")
        errors = validate_request(body)
        if errors:
            return error(422, "validation_error", "The job request is invalid.", errors)
        key = rec.headers.get("idempotency-key")
        if key is not None:
            seen = self.idempotency.get(key)
            if seen is not None:
                if seen[0] != body:
                    return error(
                        422, "idempotency_mismatch", "This key was used with another body."
                    )
                replayed = self.jobs[seen[1]]
                return 202, replayed, {"Idempotent-Replayed": "true"}, "application/json"
        job = new_job(body["kind"], body)
        job["metadata"] = dict(body.get("metadata") or {})
        self.jobs[job["id"]] = job
        if key is not None:
            self.idempotency[key] = (body, job["id"])
        if self.on_submit is not None:
            shown = dict(job)
            self.on_submit(job)
            return 202, shown, {}, "application/json"
        return 202, job, {}, "application/json"

    def _list(self, rec: Recorded) -> tuple[int, Any, dict[str, str], str]:
        q = {k: v[-1] for k, v in rec.query.items()}
        items = list(reversed(self.jobs.values()))
        if "status" in q:
            items = [j for j in items if j["status"] == q["status"]]
        if "kind" in q:
            items = [j for j in items if j["kind"] == q["kind"]]
        for key, value in q.items():
            if key.startswith("metadata."):
                items = [j for j in items if j["metadata"].get(key[9:]) == value]
        limit = int(q.get("limit", "50"))
        start = int(q["cursor"][1:]) if "cursor" in q else 0
        page = items[start : start + limit]
        more = start + limit < len(items)
        body = {"items": page, "next_cursor": f"c{start + limit}" if more else None}
        return 200, body, {}, "application/json"

    def _cancel(self, job: dict[str, Any]) -> tuple[int, Any, dict[str, str], str]:
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return error(409, "job_finished", f"Job {job['id']} already {job['status']}.")
        if job["status"] == "queued":
            job["status"] = "cancelled"
            job["finished_at"] = now_iso()
        else:
            job["cancel_requested"] = True
        return 202, job, {}, "application/json"


def problem(status: int, code: str, detail: str, errors: Any = None) -> dict[str, Any]:
    """A problem document."""
    body: dict[str, Any] = {
        "type": f"https://landscope.dev/problems/{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return body


def error(
    status: int, code: str, detail: str, errors: Any = None
) -> tuple[int, Any, dict[str, str], str]:
    """A problem answer."""
    return status, problem(status, code, detail, errors), {}, "application/problem+json"


def validate_request(body: Any) -> dict[str, Any]:
    """The field errors of a job request (a small part of the real schema)."""
    if not isinstance(body, dict):
        return {"_schema": ["Invalid input type."]}
    errors: dict[str, Any] = {}
    for name in body:
        if name not in REQUEST_FIELDS:
            errors[name] = ["Unknown field."]
    if body.get("kind") not in KINDS:
        errors["kind"] = [f"Must be one of: {', '.join(KINDS)}."]
    for name in ("model", "data"):
        if not isinstance(body.get(name), dict):
            errors[name] = ["Missing data for required field."]
    arch = (body.get("model") or {}).get("architecture")
    if isinstance(body.get("model"), dict):
        hidden = arch.get("hidden") if isinstance(arch, dict) else None
        if not isinstance(arch, dict):
            errors["model"] = {"architecture": ["Missing data for required field."]}
        elif not isinstance(hidden, list) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden
        ):
            errors["model"] = {"architecture": {"hidden": ["Must be a list of positive integers."]}}
    return errors


def new_job(kind: str, request: dict[str, Any]) -> dict[str, Any]:
    """A fresh queued job document."""
    return {
        "id": "job_" + uuid.uuid4().hex[:26].upper(),
        "kind": kind,
        "status": "queued",
        "progress": {"stage": "queued", "fraction": 0.0, "message": ""},
        "created_at": now_iso(),
        "started_at": None,
        "finished_at": None,
        "expires_at": now_iso(7 * 86400),
        "metadata": {},
        "request": request,
        "result": None,
        "error": None,
        "artifacts": [],
        "cancel_requested": False,
        "attempts": 0,
    }


def succeeded(result: dict[str, Any] | None = None) -> dict[str, Any]:
    """Field updates that finish a job successfully."""
    return {
        "status": "succeeded",
        "progress": {"stage": "done", "fraction": 1.0, "message": ""},
        "started_at": now_iso(),
        "finished_at": now_iso(),
        "result": EVALUATE_RESULT if result is None else result,
        "attempts": 1,
    }


def running(fraction: float, stage: str = "compute", message: str = "") -> dict[str, Any]:
    """Field updates of a running job."""
    return {
        "status": "running",
        "progress": {"stage": stage, "fraction": fraction, "message": message},
        "started_at": now_iso(),
        "attempts": 1,
    }


def failed(code: str = "diverged", message: str = "Loss became NaN.") -> dict[str, Any]:
    """Field updates of a failed job."""
    return {
        "status": "failed",
        "finished_at": now_iso(),
        "error": {"code": code, "message": message},
        "attempts": 1,
    }


def _make_handler(api: FakeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            rec = Recorded(
                method=self.command,
                path=unquote(split.path),
                query=parse_qs(split.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            status, payload, headers, content_type = api.handle(rec)
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

    return Handler


@pytest.fixture
def fake_api() -> Iterator[FakeAPI]:
    """A started fake service, stopped after the test."""
    server = FakeAPI().start()
    try:
        yield server
    finally:
        server.stop()


class FakeClock:
    """A monotonic clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


class FixedRandom(random.Random):
    """A random source whose ``random()`` is a constant (to see backoff ceilings)."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def make_client(api: FakeAPI, clock: FakeClock, **kwargs: Any) -> Client:
    """A client of the fake with patched time; jitter 1.0 unless ``rng`` is given."""
    kwargs.setdefault("rng", FixedRandom(1.0))
    return Client(api.url, api_key=API_KEY, sleep=clock.sleep, clock=clock.monotonic, **kwargs)


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()


# -- the fake itself follows the contract ----------------------------------------------
