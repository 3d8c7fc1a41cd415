"""Webhooks and the event stream through the real stack: a private Redis, the API under
gunicorn, a job worker and a webhooks worker, and a real HTTP receiver in this process.

Time is controlled, not raced: the job is a ``test_block`` job held at its gate until the
test releases it; the retry backoff base is 0.05 s (LANDSCOPE_WEBHOOK_BACKOFF_S) and the
test polls the delivery log; deadlines only turn a hang into a failure.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import landscope
from landscope import webhooks
from landscope_service.local import LocalStack

from support import block_request, wait_file

pytestmark = pytest.mark.integration

KEYS = "tenant-a:key-a,tenant-b:key-b"


class Receiver:
    """A webhook receiver: records each request; ``/flaky`` answers 500 to the first two
    attempts of each webhook-id."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with outer.lock:
                    seen = sum(1 for r in outer.requests
                               if r["headers"].get("webhook-id") == self.headers["webhook-id"])
                    outer.requests.append({"path": self.path, "body": body,
                                           "headers": {k.lower(): v for k, v in
                                                       self.headers.items()}})
                code = 500 if self.path == "/flaky" and seen < 2 else 204
                if self.path == "/redirect":
                    code = 307
                self.send_response(code)
                if code == 307:
                    self.send_header("location", f"http://127.0.0.1:{outer.port}/ok")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def of_job(self, job_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if json.loads(r["body"])["data"]["id"] == job_id]


def poll(what: str, fn: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s (last: {value!r})")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    st = LocalStack(api_keys=KEYS, workers=1, concurrency=1, api_workers=2,
                    env={"LANDSCOPE_LEASE_S": "3", "LANDSCOPE_TEST_KINDS": "1",
                         "LANDSCOPE_WEBHOOK_ALLOW_PRIVATE": "true",
                         "LANDSCOPE_WEBHOOK_BACKOFF_S": "0.05",
                         "LANDSCOPE_EVENTS_STREAM_MAX_S": "30"})
    try:
        st.start(timeout=120)
        st.start_worker(name="hooks", queues=["webhooks"], concurrency=2)
        st.wait_ready(timeout=120, workers=2)
    except BaseException:
        print(st.logs())
        st.stop()
        raise
    yield st
    st.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture()
def client(stack: LocalStack) -> Iterator[landscope.Client]:
    with landscope.Client(stack.url, api_key="key-a", timeout=30, max_retries=2) as c:
        yield c


def test_signed_webhooks_and_live_events_for_a_real_job(
        client: landscope.Client, receiver: Receiver, tmp_path: Path) -> None:
    secret = client.webhooks.secret()
    gate, started = tmp_path / "gate", tmp_path / "started"
    req = {**block_request(str(gate), started=str(started), steps=3),
           "webhook": receiver.url("/ok"),
           "webhook_events": ["started", "progress", "succeeded"]}
    job = client.jobs.submit(req)

    streamed: list[landscope.JobEvent] = []
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            streamed.extend(iter(client.jobs.events(job, stream=True)))
        except BaseException as e:  # surfaced below
            errors.append(e)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    wait_file(started)
    # live: the stream delivers the start while the job is still held at its gate
    poll("job.started on the stream", lambda: any(e.type == "job.started" for e in streamed))
    assert client.jobs.get(job).status == "running"
    poll("started webhook", lambda: any(json.loads(r["body"])["type"] == "job.started"
                                        for r in receiver.of_job(job.id)))
    gate.touch()
    follower.join(timeout=60)
    assert not follower.is_alive() and not errors, errors

    # the stream and the paginated history agree, in order, from queued to succeeded
    history = list(client.jobs.events(job))
    assert [e.id for e in streamed] == [e.id for e in history]
    types = [e.type for e in history]
    assert types[0] == "job.queued" and types[1] == "job.started"
    assert types[-1] == "job.succeeded" and history[-1].final
    assert set(types[2:-1]) <= {"job.progress"}
    # resuming after an event id gives exactly the rest (Last-Event-ID)
    assert [e.id for e in client.jobs.events(job, stream=True, after=history[0].id)] == \
        [e.id for e in history[1:]]

    got = poll("succeeded webhook", lambda: [r for r in receiver.of_job(job.id)
                                             if json.loads(r["body"])["type"] == "job.succeeded"])
    hit = got[0]
    event = webhooks.verify(hit["body"], hit["headers"], secret)
    assert event["data"]["status"] == "succeeded" and event["data"]["result"]["released"]
    assert event["data"]["id"] == job.id
    with pytest.raises(webhooks.WebhookVerificationError):
        webhooks.verify(hit["body"].replace(b"succeeded", b"failed"), hit["headers"], secret)
    with pytest.raises(webhooks.WebhookVerificationError):
        webhooks.verify(hit["body"], hit["headers"], client.webhooks.secret() + "x")
    for r in receiver.of_job(job.id):  # every delivery is signed
        webhooks.verify(r["body"], r["headers"], secret)

    deliveries = poll("all delivered", lambda: (
        d := client.webhooks.deliveries(job.id)) and all(
            x["status"] == "delivered" for x in d) and d)
    assert {d["type"] for d in deliveries} >= {"job.started", "job.succeeded"}
    assert all(len(d["attempts"]) == 1 for d in deliveries)


def test_a_500_is_retried_with_backoff_and_a_redirect_not_followed(
        client: landscope.Client, receiver: Receiver, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    job = client.jobs.submit({**block_request(str(gate)), "webhook": receiver.url("/flaky"),
                              "webhook_events": ["succeeded"]})
    assert client.jobs.wait(job, timeout=60).status == "succeeded"
    (delivery,) = poll("delivered after retries", lambda: [
        d for d in client.webhooks.deliveries(job.id) if d["status"] == "delivered"])
    codes = [a["status_code"] for a in delivery["attempts"]]
    assert codes == [500, 500, 204]
    hits = receiver.of_job(job.id)
    assert len(hits) == 3 and len({h["headers"]["webhook-id"] for h in hits}) == 1
    assert hits[0]["headers"]["webhook-id"] == delivery["id"]

    def gap(a: dict[str, Any]) -> float:
        from datetime import datetime

        t = [datetime.fromisoformat(a[k].replace("Z", "+00:00")).timestamp()
             for k in ("at", "next_attempt_at")]
        return t[1] - t[0]

    assert [round(gap(a), 3) for a in delivery["attempts"][:2]] == [0.05, 0.1]

    job2 = client.jobs.submit({**block_request(str(gate)), "webhook": receiver.url("/redirect"),
                               "webhook_events": ["succeeded"]})
    client.jobs.wait(job2, timeout=60)
    (d2,) = poll("a retry recorded", lambda: [
        d for d in client.webhooks.deliveries(job2.id) if len(d["attempts"]) >= 2])
    assert "redirects are not followed" in d2["attempts"][0]["error"]
    assert all(h["path"] == "/redirect" for h in receiver.of_job(job2.id))  # never /ok
