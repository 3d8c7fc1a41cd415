"""Per-tenant caps (waits, queued, running), one error shape, Redis down -> 503, the
long-poll hub and batched request metrics: real app, real (private) Redis; time moved by
an injected clock, work by the job store's own transitions."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest

from landscope_service.jobs.errors import TooManyRequestsError
from landscope_service.jobs.limits import ActiveJobCaps, WaitSlots
from landscope_service.jobs.store import JobStore

from support import AUTH_A, AUTH_B, evaluate_request


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------- wait slots
def test_wait_slots_cap_release_and_expiry(redis_client: Any) -> None:
    clock = Clock(1_000_000.0)
    slots = WaitSlots(redis_client, 2, clock=clock)
    with slots.hold("a", 10), slots.hold("a", 10):
        with pytest.raises(TooManyRequestsError) as info, slots.hold("a", 10):
            pass
        assert info.value.code == "too_many_waits" and info.value.retry_after == 1
        with slots.hold("b", 10):  # another tenant has its own slots
            pass
    with slots.hold("a", 10), slots.hold("a", 10):  # released on exit
        pass
    # A process that died holding slots: they lapse after the wait plus 30 s.
    redis_client.zadd(WaitSlots.key("a"), {"dead1": (clock.now + 40) * 1000,
                                            "dead2": (clock.now + 40) * 1000})
    with pytest.raises(TooManyRequestsError), slots.hold("a", 10):
        pass
    clock.now += 41
    with slots.hold("a", 10):
        pass


def test_wait_slots_zero_is_off(redis_client: Any) -> None:
    slots = WaitSlots(redis_client, 0)
    with slots.hold("a", 30), slots.hold("a", 30), slots.hold("a", 30):
        assert redis_client.exists(WaitSlots.key("a")) == 0


# ---------------------------------------------------------------------- queued / running
def _create(store: JobStore, tenant: str = "t", job_id: str | None = None) -> str:
    job, _ = store.create(tenant=tenant, kind="evaluate", request={}, metadata={}, queue="cpu",
                          job_id=job_id)
    return str(job["id"])


def test_queued_cap_counts_jobs_being_created_and_frees_on_start(redis_client: Any) -> None:
    store = JobStore(redis_client)
    caps = ActiveJobCaps(redis_client, max_queued=2, max_running=0, clock=Clock(1e6))
    caps.reserve("t", "job_A")
    caps.reserve("t", "job_B")  # two in flight, not created yet: both count
    with pytest.raises(TooManyRequestsError) as info:
        caps.reserve("t", "job_C")
    assert info.value.code == "too_many_queued" and info.value.retry_after == 5
    assert "LANDSCOPE_MAX_QUEUED_PER_TENANT=2" in info.value.detail
    a = _create(store, job_id="job_A")
    caps.release("t", "job_B")  # that submit failed: its place is free again
    caps.reserve("t", "job_D")
    _create(store, job_id="job_D")
    with pytest.raises(TooManyRequestsError):
        caps.reserve("t", "job_E")
    assert store.start(a, worker="w", max_attempts=3)[0] == "started"  # no longer queued
    caps.reserve("t", "job_E")
    caps.reserve("other", "job_F")  # per tenant


def test_running_cap_and_pruning_of_finished_jobs(redis_client: Any) -> None:
    store = JobStore(redis_client)
    caps = ActiveJobCaps(redis_client, max_queued=0, max_running=1, clock=Clock(1e6))
    caps.reserve("t", "job_A")
    job = _create(store, job_id="job_A")
    store.start(job, worker="w", max_attempts=3)
    with pytest.raises(TooManyRequestsError) as info:
        caps.reserve("t", "job_B")
    assert info.value.code == "too_many_running"
    store.succeed(job, {}, [])
    caps.reserve("t", "job_B")
    assert redis_client.zscore(ActiveJobCaps.key("t"), job) is None  # pruned


def test_an_id_never_created_lapses_after_the_grace(redis_client: Any) -> None:
    clock = Clock(1e6)
    caps = ActiveJobCaps(redis_client, max_queued=1, max_running=0, clock=clock)
    caps.reserve("t", "job_A")  # a process died between reserve and create
    with pytest.raises(TooManyRequestsError):
        caps.reserve("t", "job_B")
    clock.now += 61
    caps.reserve("t", "job_B")


def test_submit_over_the_queued_cap_is_429(settings: Any, redis_client: Any) -> None:
    from landscope_service.api import create_app

    app = create_app({"TESTING": True}, settings=dataclasses.replace(
        settings, max_queued_per_tenant=2))
    http = app.test_client()
    first = http.post("/v1/jobs", json=evaluate_request(seed=0),
                      headers={**AUTH_A, "Idempotency-Key": "k0"})
    assert first.status_code == 202
    assert http.post("/v1/jobs", json=evaluate_request(seed=1), headers=AUTH_A).status_code \
        == 202
    # At the cap, a retry of the first request is still its replay, not a refusal.
    again = http.post("/v1/jobs", json=evaluate_request(seed=0),
                      headers={**AUTH_A, "Idempotency-Key": "k0"})
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    other_body = http.post("/v1/jobs", json=evaluate_request(seed=5),
                           headers={**AUTH_A, "Idempotency-Key": "k0"})
    # Not a replay, and no retry can make it one: the key's misuse is said first (a 429
    # would send the client back later only to meet this 422).
    assert other_body.status_code == 422
    assert other_body.get_json()["code"] == "idempotency_mismatch"
    resp = http.post("/v1/jobs", json=evaluate_request(seed=3), headers=AUTH_A)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "5"
    body = resp.get_json()
    assert body["code"] == "too_many_queued" and "cancel" in body["detail"]
    assert http.post("/v1/jobs", json=evaluate_request(), headers=AUTH_B).status_code == 202
    job_id = http.get("/v1/jobs", headers=AUTH_A).get_json()["items"][0]["id"]
    assert http.post(f"/v1/jobs/{job_id}/cancel", headers=AUTH_A).status_code == 202
    assert http.post("/v1/jobs", json=evaluate_request(seed=4), headers=AUTH_A).status_code \
        == 202


def test_long_poll_over_the_wait_cap_is_429(settings: Any, redis_client: Any) -> None:
    from landscope_service.api import create_app

    app = create_app({"TESTING": True}, settings=dataclasses.replace(
        settings, max_waits_per_tenant=1))
    http = app.test_client()
    job = http.post("/v1/jobs", json=evaluate_request(), headers=AUTH_A).get_json()
    redis_client.zadd(WaitSlots.key("tenant-a"), {"held": 9e15})  # one wait in progress
    resp = http.get(f"/v1/jobs/{job['id']}?wait=5", headers=AUTH_A)
    assert resp.status_code == 429 and resp.get_json()["code"] == "too_many_waits"
    assert resp.headers["Retry-After"] == "1"
    assert http.get(f"/v1/jobs/{job['id']}", headers=AUTH_A).status_code == 200  # no wait


# ---------------------------------------------------------------------- long-poll hub
def test_waits_wake_on_the_finish_event(app: Any, redis_client: Any) -> None:
    svc = app.extensions["landscope"]
    job = _create(svc.jobs)
    svc.jobs.start(job, worker="w", max_attempts=3)
    svc.waits.recheck_s = 3600  # only the event can wake it
    seen: list[bool] = []
    registered = threading.Event()

    def finished() -> bool:
        registered.set()
        done = svc.jobs.status(job) == "succeeded"
        seen.append(done)
        return done

    t = threading.Thread(target=svc.waits.wait, args=(job, 3000.0, finished))
    t.start()
    assert registered.wait(30)
    svc.jobs.succeed(job, {}, [])
    t.join(60)
    assert not t.is_alive() and seen[-1] is True


# ---------------------------------------------------------------------- error shapes
def test_malformed_json_errors_is_an_object(http: Any) -> None:
    resp = http.post("/v1/jobs", data=b"{not json",
                     headers={**AUTH_A, "Content-Type": "application/json"})
    body = resp.get_json()
    assert resp.status_code == 400 and body["code"] == "malformed_json"
    assert isinstance(body["errors"], dict) and "body" in body["errors"]


def test_a_list_body_errors_is_an_object(http: Any) -> None:
    resp = http.post("/v1/jobs", json=[1, 2], headers=AUTH_A)
    assert resp.status_code == 422 and isinstance(resp.get_json()["errors"], dict)


# ---------------------------------------------------------------------- Redis down
def test_redis_unreachable_is_503_with_retry_after(settings: Any) -> None:
    from landscope_service.api import create_app
    from landscope_service.local import free_port

    down = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    http = create_app({"TESTING": True}, settings=down).test_client()
    for method, path, kwargs in [
        ("post", "/v1/jobs", {"json": evaluate_request()}),
        ("get", "/v1/jobs", {}),
        ("get", "/v1/jobs/job_01M8TJ643BK3GH7YTZ5FH54P9C?wait=5", {}),
        ("post", "/v1/jobs/job_01M8TJ643BK3GH7YTZ5FH54P9C/cancel", {}),
        ("post", "/v1/blobs", {"data": b"abc"}),
        ("get", "/metrics", {}),
    ]:
        resp = getattr(http, method)(path, headers=AUTH_A, **kwargs)
        assert resp.status_code == 503, (path, resp.get_json())
        assert resp.mimetype == "application/problem+json"
        assert resp.get_json()["code"] == "unavailable" and resp.headers["Retry-After"] == "5"
    assert http.get("/healthz").status_code == 200  # liveness never needs Redis
    ready = http.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["redis"] is False


# ---------------------------------------------------------------------- metrics
def test_request_metrics_are_batched_and_flushed_on_scrape(settings: Any,
                                                           redis_client: Any) -> None:
    from landscope_service.api import create_app

    app = create_app({"TESTING": True, "METRICS_FLUSH_S": 3600.0}, settings=settings)
    http = app.test_client()
    for _ in range(3):
        http.get("/healthz")
    assert redis_client.keys("ls:m:http:*") == []  # buffered, not yet written
    text = http.get("/metrics").get_data(as_text=True)
    line = 'landscope_http_request_duration_seconds_count{endpoint="/healthz",method="GET",' \
           'status="200"} 3.0'
    assert line in text


# ---------------------------------------------------------------------- body deadline
def test_a_body_that_does_not_arrive_ends_in_408_on_threaded_servers() -> None:
    """Without gevent the deadline bounds each wait on the socket: a client that sends
    nothing after the headers gets 408 request_timeout (here after 0.2 s)."""
    import socket

    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request, Response

    from landscope_service.api.deadline import BodyDeadline, BodyTimeout

    server, client = socket.socketpair()
    client.sendall(b"{")  # one byte of the 100 announced, then nothing
    seen: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        try:
            Request(environ).get_data()
        except BodyTimeout as e:
            seen.append(e)
            return e.get_response()(environ, start_response)
        return Response("read")(environ, start_response)

    environ = EnvironBuilder(method="POST", path="/v1/jobs",
                             content_type="application/json").get_environ()
    environ["CONTENT_LENGTH"] = "100"
    environ["wsgi.input"] = server.makefile("rb")
    environ["gunicorn.socket"] = server
    statuses: list[str] = []
    BodyDeadline(app, 0.2)(environ, lambda status, headers: statuses.append(status))
    server.close()
    client.close()
    assert statuses == ["408 REQUEST TIMEOUT"] and len(seen) == 1
    assert "LANDSCOPE_BODY_TIMEOUT_S" in str(seen[0].description)


def test_a_metrics_batch_adds_up_like_one_write_per_request(redis_client: Any) -> None:
    """A flushed batch is added up before it is written; the hashes hold what one write
    per request would have made (sums to 1e-9)."""
    from landscope_service.metrics import RedisMetrics

    obs = [("GET", "/healthz", 200, 0.001), ("POST", "/v1/jobs", 202, 0.004),
           ("POST", "/v1/jobs", 202, 0.02), ("POST", "/v1/jobs", 422, 0.003),
           ("GET", "/healthz", 200, 0.7), ("POST", "/v1/jobs", 202, 0.004)]
    metrics = RedisMetrics(redis_client)
    metrics.http_requests(obs[:4])
    metrics.http_requests(obs[4:])
    batched = {k: redis_client.hgetall(k) for k in
               ("ls:m:http:bucket", "ls:m:http:sum", "ls:m:http:count")}
    redis_client.delete(*batched)
    for o in obs:
        metrics.http_request(*o)
    one_by_one = {k: redis_client.hgetall(k) for k in batched}
    assert batched["ls:m:http:bucket"] == one_by_one["ls:m:http:bucket"]
    assert batched["ls:m:http:count"] == one_by_one["ls:m:http:count"]
    assert batched["ls:m:http:sum"].keys() == one_by_one["ls:m:http:sum"].keys()
    for k, v in batched["ls:m:http:sum"].items():
        assert float(v) == pytest.approx(float(one_by_one["ls:m:http:sum"][k]), abs=1e-9)
    assert int(batched["ls:m:http:count"][b"POST\x1f/v1/jobs\x1f202"]) == 3


def _hgets(redis_client: Any) -> int:
    stats = redis_client.info("commandstats")
    return int(stats.get("cmdstat_hget", {}).get("calls", 0))


def test_caps_follow_the_jobs_and_walk_only_at_the_cap(redis_client: Any) -> None:
    """Under the caps, a reserve reads two set sizes and walks no job: the store's status
    scripts keep the tenant's active and running sets (a job leaves the active set when
    it finishes, the running set when it stops running). Counted with Redis's own
    command statistics, so the test says how much work a submit costs, not how long."""
    store = JobStore(redis_client)
    caps = ActiveJobCaps(redis_client, max_queued=50, max_running=3, clock=Clock(1e6))
    jobs = []
    for i in range(40):
        caps.reserve("t", f"job_{i:02d}")
        jobs.append(_create(store, job_id=f"job_{i:02d}"))
    for job in jobs[:2]:
        assert store.start(job, worker="w", max_attempts=3)[0] == "started"
    assert redis_client.zcard(ActiveJobCaps.running_key("t")) == 2
    redis_client.config_resetstat()
    caps.reserve("t", "job_40")  # 41 active < 50, 2 running < 3: nothing walked
    assert _hgets(redis_client) == 0
    caps.release("t", "job_40")
    store.succeed(jobs[0], {}, [])  # finished: out of both sets
    assert store.expire(jobs[5])  # a queued job that ends: out of the active set
    assert redis_client.zscore(ActiveJobCaps.key("t"), jobs[5]) is None
    assert redis_client.zscore(ActiveJobCaps.key("t"), jobs[0]) is None
    assert redis_client.zscore(ActiveJobCaps.running_key("t"), jobs[0]) is None
    store.start(jobs[2], worker="w", max_attempts=3)
    store.start(jobs[3], worker="w", max_attempts=3)
    redis_client.config_resetstat()
    with pytest.raises(TooManyRequestsError) as info:  # 3 running: the running set is walked
        caps.reserve("t", "job_41")
    assert info.value.code == "too_many_running" and "3 running jobs" in info.value.detail
    assert _hgets(redis_client) == 3


def test_a_stale_member_is_dropped_when_its_set_reaches_the_cap(redis_client: Any) -> None:
    """A job that ended without the store's scripts (or before the sets existed) is not
    counted once its set is walked: the walk at the cap recounts exactly."""
    store = JobStore(redis_client)
    caps = ActiveJobCaps(redis_client, max_queued=2, max_running=1, clock=Clock(1e6))
    caps.reserve("t", "job_A")
    a = _create(store, job_id="job_A")
    store.start(a, worker="w", max_attempts=3)
    redis_client.hset(f"ls:job:{a}", "status", "failed")  # behind the scripts' back
    caps.reserve("t", "job_B")  # the running set is walked: job_A no longer counts
    assert redis_client.zscore(ActiveJobCaps.running_key("t"), a) is None
    redis_client.zadd(ActiveJobCaps.key("t"), {"job_GONE": 0})  # long gone, never created
    caps.reserve("t", "job_C")  # 3 members >= 2: walked; job_A (failed) and job_GONE drop
    members = {m.decode() for m in redis_client.zrange(ActiveJobCaps.key("t"), 0, -1)}
    assert members == {"job_B", "job_C"}
    with pytest.raises(TooManyRequestsError) as info:
        caps.reserve("t", "job_D")
    assert info.value.code == "too_many_queued"


def test_a_capped_submit_is_one_script_call(settings: Any, redis_client: Any) -> None:
    """The caps are checked by the script that creates the job: one EVALSHA per submit
    (the reserve script, a round trip of its own, is not called), and the job is counted
    in the tenant's active set."""
    from landscope_service.api import create_app

    app = create_app({"TESTING": True}, settings=dataclasses.replace(
        settings, max_queued_per_tenant=10, max_running_per_tenant=2))
    http = app.test_client()
    # The first submit's housekeeping (blob sweep, the queue's message template) is not
    # counted: the second submit is.
    assert http.post("/v1/jobs", json=evaluate_request(seed=1), headers=AUTH_A).status_code \
        == 202
    redis_client.config_resetstat()
    resp = http.post("/v1/jobs", json=evaluate_request(), headers=AUTH_A)
    assert resp.status_code == 202
    stats = redis_client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 1, {k: v["calls"] for k, v in stats.items()}
    assert "cmdstat_zcard" in stats  # the caps were counted, inside that script
    assert redis_client.zscore(ActiveJobCaps.key("tenant-a"), resp.get_json()["id"])
