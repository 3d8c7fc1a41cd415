"""The real API app served in-process over real HTTP, for the SDK and CLI tests.

Test modules import it as ``liveapi`` (``tests`` is on pytest's ``pythonpath``). The
``live_api`` fixture builds the app with :func:`landscope_service.api.create_app` on the
session's private Redis, serves it with werkzeug on a free loopback port in a thread, and
records every request. Jobs are moved through their states with the service's own
:class:`~landscope_service.jobs.store.JobStore` (as a worker would), either at once
(:meth:`LiveAPI.add_job`, :meth:`LiveAPI.apply`) or one step per sleep of the test's
clock (:meth:`LiveAPI.script`), so time is the test's, never the wall clock's.

``tests/fakeapi.py`` stays only for the tests that must inject a server error.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from fakeapi import EVALUATE_RESULT, FakeClock, FixedRandom, Recorded

from landscope import Client

API_KEY = "key-a"  # tenant-a in the conftest's settings
OTHER_KEY = "key-b"  # tenant-b
TENANT = "tenant-a"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


@dataclass
class LiveAPI:
    """The real app on a real socket; ``url`` is its base URL."""

    app: Any
    url: str = ""
    api_key: str = API_KEY
    requests: list[Recorded] = field(default_factory=list)
    scripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    on_submit: Callable[[str], None] | None = None
    """Called with the id of each job submitted (202), before the answer is sent."""
    _server: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- serving ---------------------------------------------------------------------

    def start(self) -> LiveAPI:
        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", 0, self._recording(self.app), threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _recording(self, app: WSGIApp) -> WSGIApp:
        def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            length = environ.get("CONTENT_LENGTH")
            if length:
                body = environ["wsgi.input"].read(int(length))
            elif environ.get("wsgi.input_terminated"):
                body = environ["wsgi.input"].read()
            else:
                body = b""
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ.pop("wsgi.input_terminated", None)
            headers = {k[5:].lower().replace("_", "-"): v for k, v in environ.items()
                       if k.startswith("HTTP_")}
            if environ.get("CONTENT_TYPE"):
                headers["content-type"] = environ["CONTENT_TYPE"]
            rec = Recorded(environ["REQUEST_METHOD"], environ["PATH_INFO"],
                           parse_qs(environ.get("QUERY_STRING", "")), headers, body)
            with self._lock:
                self.requests.append(rec)
            if self.on_submit is None or (rec.method, rec.path) != ("POST", "/v1/jobs"):
                return app(environ, start_response)
            # a job submitted here is moved on (as a worker would) before the answer leaves
            answer: list[Any] = []

            def keep(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
                answer[:] = [status, headers, *exc]
                return lambda data: None

            out = b"".join(app(environ, keep))
            if answer[0].startswith("202"):
                self.on_submit(json.loads(out)["id"])
            start_response(*answer)
            return [out]

        return wsgi

    def calls(self, method: str, path: str | None = None) -> list[Recorded]:
        """The recorded requests with this method (and path)."""
        return [r for r in self.requests if r.method == method and path in (None, r.path)]

    # -- job states, as a worker would write them -----------------------------------------

    @property
    def services(self) -> Any:
        return self.app.extensions["landscope"]

    @property
    def jobs(self) -> Any:
        """The service's job store, with a lease that outlives any test (no reaping)."""
        store = copy.copy(self.services.jobs)
        store.lease_s = 3600.0
        return store

    def add_job(self, *, kind: str = "evaluate", request: dict[str, Any] | None = None,
                metadata: dict[str, str] | None = None, tenant: str = TENANT,
                **update: Any) -> dict[str, Any]:
        """Create a job of ``tenant`` directly in the store and apply ``update`` to it."""
        job, _ = self.jobs.create(tenant=tenant, kind=kind, request=request or {},
                                  metadata=dict(metadata or {}), queue="cpu")
        if update:
            self.apply(job["id"], update)
        return self.get(job["id"])

    def get(self, job_id: str) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        assert job is not None, job_id
        return job  # type: ignore[no-any-return]

    def apply(self, job_id: str, update: dict[str, Any]) -> None:
        """Move the job as a worker would: ``update`` is one of :func:`running`,
        :func:`succeeded`, :func:`failed`, :func:`cancelled` (or ``{}``: no change)."""
        store = self.jobs
        status = update.get("status")
        if status is None:
            return
        if status in ("running", "succeeded") and store.status(job_id) == "queued":
            code, _, _ = store.start(job_id, worker="test-worker@host", max_attempts=99)
            assert code == "started", code
        if status == "running":
            p = update["progress"]
            store.progress(job_id, p["stage"], p["fraction"], p["message"])
        elif status == "succeeded":
            arts = []
            for name, (data, media_type) in update.get("artifact_files", {}).items():
                from landscope_service.storage.blobs import artifact_key

                self.services.store.put(artifact_key(job_id, name), data)
                arts.append({"name": name, "media_type": media_type, "size": len(data),
                             "sha256": hashlib.sha256(data).hexdigest()})
            arts += update.get("artifacts", [])
            assert store.succeed(job_id, update["result"], arts)
        elif status == "failed":
            err = update["error"]
            assert store.fail(job_id, err["code"], err["message"])
        elif status == "cancelled":
            if update.get("cancel_requested"):
                store.request_cancel(job_id)
            assert store.mark_cancelled(job_id)
        else:
            raise ValueError(f"No such update: {update!r}")

    def script(self, job_id: str, *updates: dict[str, Any]) -> None:
        """Apply one of ``updates`` at each sleep of the :func:`live_client`'s clock."""
        self.scripts[job_id] = list(updates)

    def step(self) -> None:
        """One tick of the scripts (the client slept: the worker moved on)."""
        for job_id, updates in self.scripts.items():
            if updates:
                self.apply(job_id, updates.pop(0))


def running(fraction: float, stage: str = "compute", message: str = "") -> dict[str, Any]:
    return {"status": "running",
            "progress": {"stage": stage, "fraction": fraction, "message": message}}


def succeeded(result: dict[str, Any] | None = None, *,
              artifacts: dict[str, tuple[bytes, str]] | None = None,
              listed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A finished job; ``artifacts`` are stored (name -> (bytes, media type)), ``listed``
    are artifact records written as they are (bytes absent)."""
    return {"status": "succeeded", "result": EVALUATE_RESULT if result is None else result,
            "artifact_files": artifacts or {}, "artifacts": listed or []}


def failed(code: str = "diverged", message: str = "Loss became NaN.") -> dict[str, Any]:
    return {"status": "failed", "error": {"code": code, "message": message}}


def cancelled(*, requested: bool = False) -> dict[str, Any]:
    return {"status": "cancelled", "cancel_requested": requested}


class LiveClock(FakeClock):
    """The fake clock whose every sleep also advances the live API's scripts."""

    def __init__(self, api: LiveAPI) -> None:
        super().__init__()
        self.api = api

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.api.step()


@pytest.fixture
def live_api(app: Any) -> Iterator[LiveAPI]:
    """The real app (private Redis, tenants key-a and key-b) served for one test."""
    server = LiveAPI(app).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def live_clock(live_api: LiveAPI) -> LiveClock:
    return LiveClock(live_api)


def live_client(api: LiveAPI, clock: FakeClock, **kwargs: Any) -> Client:
    """A client of the live API with the test's clock; jitter 1.0 unless ``rng`` is given."""
    kwargs.setdefault("rng", FixedRandom(1.0))
    kwargs.setdefault("api_key", api.api_key)
    return Client(api.url, sleep=clock.sleep, clock=clock.monotonic, **kwargs)
