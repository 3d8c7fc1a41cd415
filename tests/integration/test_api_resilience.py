"""An API one client cannot stall, per-tenant caps and Redis outages, against real
processes: a private Redis, the API under gunicorn (gevent workers, as
``landscope-service api`` starts it), one Celery worker, real sockets.

Nothing here races the clock: held requests are counted while they are held (a
``test_block`` job keeps them pending until the test creates its gate file), and every
bound on time is generous (the API's answers are awaited for up to 30 s).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

import landscope
from landscope_service.local import LocalStack

from support import block_request, evaluate_request

pytestmark = pytest.mark.integration

KEYS = "tenant-a:key-a,tenant-b:key-b"
MAX_WAITS = 16
BODY_TIMEOUT_S = 2
A = {"Authorization": "Bearer key-a"}
B = {"Authorization": "Bearer key-b"}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    st = LocalStack(api_keys=KEYS, workers=1, concurrency=1, api_workers=2,
                    restart_redis=False,
                    env={"LANDSCOPE_TEST_KINDS": "1",
                         "LANDSCOPE_MAX_WAITS_PER_TENANT": str(MAX_WAITS),
                         "LANDSCOPE_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
                         "LANDSCOPE_MAX_QUEUED_PER_TENANT": "2",
                         "LANDSCOPE_MAX_RUNNING_PER_TENANT": "1"})
    try:
        st.start(timeout=120)
    except BaseException:
        print(st.logs())
        st.stop()
        raise
    yield st
    st.stop()


def _send(stack: LocalStack, head: str, body: bytes = b"") -> socket.socket:
    """Open a connection and send a request (or the start of one); read nothing yet."""
    sock = socket.create_connection(("127.0.0.1", int(stack.port or 0)), timeout=30)
    sock.sendall(head.encode() + body)
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    """Read one HTTP/1.1 answer with a Content-Length (status, headers, JSON body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    sock.close()
    return int(lines[0].split()[1]), headers, json.loads(body) if body else {}


def _long_poll(stack: LocalStack, job_id: str) -> socket.socket:
    return _send(stack, f"GET /v1/jobs/{job_id}?wait=30 HTTP/1.1\r\nHost: t\r\n"
                        "Authorization: Bearer key-a\r\n\r\n")


def _slow_body(stack: LocalStack) -> socket.socket:
    return _send(stack, "POST /v1/jobs HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer key-a\r\n"
                        "Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n", b"{")


def _wait_status(client: landscope.Client, job_id: str, status: str) -> None:
    deadline = time.monotonic() + 60
    while client.jobs.get(job_id).status != status:
        assert time.monotonic() < deadline, f"{job_id} never {status}"
        time.sleep(0.05)


def test_held_long_polls_and_slow_bodies_do_not_stall_the_api(
        stack: LocalStack, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with landscope.Client(stack.url, api_key="key-a", timeout=30) as a, \
            landscope.Client(stack.url, api_key="key-b", timeout=30) as b:
        job = a.jobs.submit(block_request(str(gate)))
        _wait_status(a, job.id, "running")
        polls = [_long_poll(stack, job.id) for _ in range(MAX_WAITS)]
        slow = [_slow_body(stack) for _ in range(40)]
        # Once the server holds every poll (counted in Redis), one more is refused.
        slots = redis.Redis.from_url(stack.redis_url)
        deadline = time.monotonic() + 30
        while slots.zcard("ls:waits:tenant-a") < MAX_WAITS:
            assert time.monotonic() < deadline, "the long polls never all arrived"
            time.sleep(0.05)
        status, headers, body = _answer(_long_poll(stack, job.id))
        assert status == 429 and body["code"] == "too_many_waits"
        assert headers["retry-after"] == "1"
        # While all of that is held, the probes and another tenant's submit answer.
        for _ in range(5):
            assert requests.get(stack.url + "/healthz", timeout=30).status_code == 200
            assert requests.get(stack.url + "/readyz", timeout=30).status_code == 200
        other = b.jobs.submit(evaluate_request(num_samples=8))
        assert other.status in ("queued", "running")
        # The slow bodies end in 408 after the body deadline; the polls are still held.
        for sock in slow:
            status, _, body = _answer(sock)
            assert status == 408 and body["code"] == "request_timeout"
        for sock in polls:
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)  # no answer yet: the job is still blocked
            sock.setblocking(True)
        gate.touch()
        answers = [_answer(sock) for sock in polls]
        assert [s for s, _, _ in answers] == [200] * MAX_WAITS
        assert {bd["status"] for _, _, bd in answers} == {"succeeded"}
        assert b.jobs.wait(other.id, timeout=120).status == "succeeded"


def test_caps_on_running_and_queued_jobs(stack: LocalStack, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with landscope.Client(stack.url, api_key="key-a", timeout=30, max_retries=0) as a, \
            landscope.Client(stack.url, api_key="key-b", timeout=30, max_retries=0) as b:
        running = a.jobs.submit(block_request(str(gate)))
        _wait_status(a, running.id, "running")  # the only worker is now busy
        resp = requests.post(stack.url + "/v1/jobs", json=evaluate_request(), headers=A,
                             timeout=30)
        assert resp.status_code == 429 and resp.json()["code"] == "too_many_running"
        assert int(resp.headers["Retry-After"]) >= 1
        queued = [b.jobs.submit(evaluate_request(seed=s)) for s in range(2)]
        resp = requests.post(stack.url + "/v1/jobs", json=evaluate_request(seed=9), headers=B,
                             timeout=30)
        assert resp.status_code == 429 and resp.json()["code"] == "too_many_queued"
        with pytest.raises(landscope.RateLimitError):  # the SDK's view of the same answer
            b.jobs.submit(evaluate_request(seed=9))
        b.jobs.cancel(queued[0].id)
        third = b.jobs.submit(evaluate_request(seed=9))  # a place became free
        gate.touch()
        assert a.jobs.wait(running.id, timeout=120).status == "succeeded"
        for j in (queued[1], third):
            assert b.jobs.wait(j.id, timeout=120).status == "succeeded"


def test_redis_down_is_503_with_retry_after_then_recovers(stack: LocalStack) -> None:
    """Last in this module: it kills the stack's Redis (the stack does not restart it)."""
    pid = stack.redis_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    calls = [("post", "/v1/jobs", {"json": evaluate_request()}),
             ("get", "/v1/jobs", {}),
             ("get", "/v1/jobs/job_01M8TJ643BK3GH7YTZ5FH54P9C?wait=1", {}),
             ("post", "/v1/blobs", {"data": b"bytes"})]
    for method, path, kwargs in calls:
        resp = requests.request(method, stack.url + path, headers=A, timeout=30, **kwargs)
        assert resp.status_code == 503, (path, resp.text)
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert resp.json()["code"] == "unavailable" and int(resp.headers["Retry-After"]) >= 1
    assert requests.get(stack.url + "/healthz", timeout=30).status_code == 200
    assert requests.get(stack.url + "/readyz", timeout=30).status_code == 503
    stack.start_redis()  # same port and files
    resp = requests.post(stack.url + "/v1/jobs", json=evaluate_request(), headers=A, timeout=30)
    assert resp.status_code == 202, resp.text
