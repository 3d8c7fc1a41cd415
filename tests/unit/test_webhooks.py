"""Webhooks without a worker: SSRF checks at submit, signing (known answer), the SDK's
verify, secrets and rotation, the delivery log and the retry schedule, the event stream."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
import requests

import landscope
from landscope import webhooks as sdk_webhooks
from landscope_service.jobs.store import JobStore
from landscope_service.jobs.webhooks import (
    Deliveries,
    WebhookSecrets,
    blocked_address,
    check_webhook_url,
    sign,
)
from landscope_service.worker.webhooks import MAX_DELAY_S, WebhookSender

from support import AUTH_A, AUTH_B, evaluate_request


# ---------------------------------------------------------------- SSRF
@pytest.mark.parametrize("addr", [
    "127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "fe80::1", "fd00:ec2::254", "100.64.0.1", "0.0.0.0", "::ffff:127.0.0.1", "224.0.0.1",
])
def test_private_addresses_are_blocked(addr: str) -> None:
    assert blocked_address(addr) is not None


@pytest.mark.parametrize("addr", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses_pass(addr: str) -> None:
    assert blocked_address(addr) is None


def test_url_checks() -> None:
    public = {"hooks.example.com": ["93.184.216.34"]}
    rebinding = {"evil.example.com": ["93.184.216.34", "10.0.0.5"]}

    def resolve(host: str, port: int) -> list[str]:
        return {**public, **rebinding}[host]

    assert check_webhook_url("https://hooks.example.com/x", allow_private=False,
                             resolve=resolve) is None
    msg = check_webhook_url("https://evil.example.com/x", allow_private=False, resolve=resolve)
    assert msg is not None and "10.0.0.5" in msg and "private" in msg
    msg = check_webhook_url("http://hooks.example.com/x", allow_private=False, resolve=resolve)
    assert msg is not None and "https" in msg
    assert check_webhook_url("https://169.254.169.254/latest", allow_private=False,
                             resolve=resolve) is not None
    assert check_webhook_url("https://u:p@hooks.example.com/", allow_private=False,
                             resolve=resolve) is not None
    assert check_webhook_url("ftp://hooks.example.com/", allow_private=True) is not None
    assert check_webhook_url("http://127.0.0.1:9/x", allow_private=True) is None


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hook", "https://localhost/hook", "https://169.254.169.254/latest/meta",
    "https://[::1]/hook", "https://10.0.0.1/hook", "http://93.184.216.34/hook",
])
def test_submit_refuses_private_webhooks(http: Any, url: str) -> None:
    req = {**evaluate_request(num_samples=4), "webhook": url}
    r = http.post("/v1/jobs", json=req, headers=AUTH_A)
    assert r.status_code == 422, r.get_json()
    body = r.get_json()
    assert "webhook" in body["errors"], body
    assert http.get("/v1/jobs", headers=AUTH_A).get_json()["items"] == []  # no job made


def test_webhook_events_need_a_webhook_and_known_names(http: Any) -> None:
    req = {**evaluate_request(num_samples=4), "webhook_events": ["succeeded"]}
    r = http.post("/v1/jobs", json=req, headers=AUTH_A)
    assert r.status_code == 422 and "webhook_events" in r.get_json()["errors"]
    req = {**evaluate_request(num_samples=4), "webhook": "https://93.184.216.34/h",
           "webhook_events": ["finished"]}
    r = http.post("/v1/jobs", json=req, headers=AUTH_A)
    assert r.status_code == 422 and "webhook_events" in r.get_json()["errors"]


# ---------------------------------------------------------------- signing
def test_signature_known_answer() -> None:
    # Standard Webhooks: HMAC-SHA256 over "id.timestamp.body", base64, "v1," prefix.
    key = b"0123456789abcdef0123456789abcdef"
    body = b'{"type":"job.succeeded"}'
    expected = base64.b64encode(
        hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()).decode()
    assert sign(key, "msg_1", 1700000000, body) == "v1," + expected
    secret = "whsec_" + base64.b64encode(key).decode()
    assert sdk_webhooks.sign("msg_1", 1700000000, body, secret) == "v1," + expected


def _headers(secret: str, body: bytes, ts: int, msg_id: str = "msg_x") -> dict[str, str]:
    return {"Webhook-Id": msg_id, "Webhook-Timestamp": str(ts),
            "Webhook-Signature": sdk_webhooks.sign(msg_id, ts, body, secret)}


def test_verify_accepts_and_rejects() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    other = "whsec_" + base64.b64encode(b"o" * 32).decode()
    body = json.dumps({"type": "job.succeeded", "data": {"id": "job_1"}}).encode()
    ts = 1_700_000_000
    headers = _headers(secret, body, ts)
    assert sdk_webhooks.verify(body, headers, secret, now=ts + 10)["type"] == "job.succeeded"
    Err = sdk_webhooks.WebhookVerificationError
    with pytest.raises(Err, match="altered"):
        sdk_webhooks.verify(body.replace(b"job_1", b"job_2"), headers, secret, now=ts)
    with pytest.raises(Err, match="altered"):
        sdk_webhooks.verify(body, headers, other, now=ts)
    with pytest.raises(Err, match="tolerance"):
        sdk_webhooks.verify(body, headers, secret, now=ts + 301)
    with pytest.raises(Err, match="tolerance"):
        sdk_webhooks.verify(body, headers, secret, now=ts - 301)
    with pytest.raises(Err, match="not signed"):
        sdk_webhooks.verify(body, {"webhook-id": "msg_x", "webhook-timestamp": str(ts)},
                            secret, now=ts)
    forged_ts = {**headers, "Webhook-Timestamp": str(ts + 1)}
    with pytest.raises(Err, match="altered"):
        sdk_webhooks.verify(body, forged_ts, secret, now=ts)
    # several signatures (after a rotation): any one matching is enough
    both = {**headers, "Webhook-Signature": sdk_webhooks.sign("msg_x", ts, body, other) + " "
            + headers["Webhook-Signature"]}
    assert sdk_webhooks.verify(body, both, secret, now=ts)["data"]["id"] == "job_1"
    assert issubclass(Err, landscope.LandscopeError)


def test_secret_rotation_keeps_the_previous_one_for_the_grace(redis_client: Any) -> None:
    now = [1000.0]
    secrets = WebhookSecrets(redis_client, grace_s=60, clock=lambda: now[0])
    first = secrets.current("t")
    assert first.startswith("whsec_") and len(base64.b64decode(first[6:])) == 32
    assert secrets.current("t") == first and secrets.current("u") != first
    rotated = secrets.rotate("t")
    assert rotated["secret"] != first and rotated["previous_valid_until"] == 1060.0
    assert secrets.valid("t") == [rotated["secret"], first]
    body = b"{}"
    header = secrets.signature_header("t", "msg_1", 1000, body)
    for s in (first, rotated["secret"]):
        sdk_webhooks.verify(body, {"webhook-id": "msg_1", "webhook-timestamp": "1000",
                                   "webhook-signature": header}, s, now=1000)
    now[0] = 1061.0
    assert secrets.valid("t") == [rotated["secret"]]


def test_secret_endpoints_per_tenant(http: Any) -> None:
    a = http.get("/v1/webhooks/secret", headers=AUTH_A).get_json()["secret"]
    b = http.get("/v1/webhooks/secret", headers=AUTH_B).get_json()["secret"]
    assert a != b and a.startswith("whsec_")
    r = http.post("/v1/webhooks/secret/rotate", headers=AUTH_A)
    assert r.status_code == 200
    assert r.get_json()["secret"] == http.get("/v1/webhooks/secret",
                                              headers=AUTH_A).get_json()["secret"] != a
    assert http.get("/v1/webhooks/secret").status_code == 401


# ---------------------------------------------------------------- delivery and retries
class _Answer:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code

    def close(self) -> None:
        pass


def test_retry_schedule_doubles_then_gives_up(settings: Any, redis_client: Any) -> None:
    s = settings.__class__(**{**settings.__dict__, "webhook_backoff_s": 10.0,
                              "webhook_retry_s": 600.0, "webhook_allow_private": True})
    now = [5000.0]
    calls: list[dict[str, Any]] = []

    def post(url: str, **kw: Any) -> _Answer:
        calls.append(kw)
        return _Answer(500)

    sender = WebhookSender(s, redis_client, post=post, clock=lambda: now[0])
    d = Deliveries(redis_client)
    did = d.create(job_id="job_X", tenant="t", url="http://127.0.0.1:9/h",
                   event_type="job.succeeded", body=b'{"a":1}')
    delays = []
    while (delay := sender.attempt(did)) is not None:
        delays.append(delay)
        now[0] += delay
    assert delays == [10.0, 20.0, 40.0, 80.0, 160.0]  # next one (320) would pass 600 s
    rec = d.get(did)
    assert rec is not None and rec["status"] == "failed" and len(rec["attempts"]) == 6
    assert {c["headers"]["webhook-id"] for c in calls} == {did}  # stable across retries
    assert all(c["allow_redirects"] is False for c in calls)
    assert sender.attempt(did) is None and len(calls) == 6  # a finished delivery stays so
    assert MAX_DELAY_S <= 3600


def test_redirect_and_connection_errors_are_failures(settings: Any, redis_client: Any) -> None:
    s = settings.__class__(**{**settings.__dict__, "webhook_allow_private": True})
    answers: list[Any] = [_Answer(302), requests.ConnectionError("refused"), _Answer(204)]

    def post(url: str, **kw: Any) -> _Answer:
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a  # type: ignore[no-any-return]

    sender = WebhookSender(s, redis_client, post=post)
    d = Deliveries(redis_client)
    did = d.create(job_id="job_Y", tenant="t", url="http://127.0.0.1:9/h",
                   event_type="job.failed", body=b"{}")
    assert sender.attempt(did) is not None and sender.attempt(did) is not None
    assert sender.attempt(did) is None
    rec = d.get(did)
    assert rec is not None and rec["status"] == "delivered"
    assert "redirects are not followed" in rec["attempts"][0]["error"]
    assert "refused" in rec["attempts"][1]["error"]
    assert rec["attempts"][2]["status_code"] == 204 and rec["attempts"][2]["error"] is None


def test_a_private_address_is_refused_at_delivery_too(settings: Any, redis_client: Any) -> None:
    sender = WebhookSender(settings, redis_client, post=lambda *a, **k: pytest.fail("sent"))
    d = Deliveries(redis_client)
    did = d.create(job_id="job_Z", tenant="t", url="https://127.0.0.1/h",
                   event_type="job.failed", body=b"{}")
    assert sender.attempt(did) is not None
    rec = d.get(did)
    assert rec is not None and "loopback" in rec["attempts"][0]["error"]


# ---------------------------------------------------------------- events
def test_events_are_ordered_and_complete(redis_client: Any) -> None:
    store = JobStore(redis_client, lease_s=5.0)
    sent: list[str] = []
    store.events.sender = sent.append
    req = {**evaluate_request(num_samples=4), "webhook": "https://93.184.216.34/h",
           "webhook_events": ["started", "succeeded", "progress"]}
    job, _ = store.create(tenant="t", kind="evaluate", request=req, metadata={}, queue="cpu")
    code, _, _ = store.start(job["id"], worker="w1", max_attempts=3)
    assert code == "started"
    for i in range(50):  # throttled: at most one progress event a second
        store.progress(job["id"], "stage", i / 50)
    redis_client.delete(f"ls:lease:{job['id']}")  # the first worker was lost
    store.requeue(job["id"])
    assert store.start(job["id"], worker="w2", max_attempts=3)[0] == "started"
    store.succeed(job["id"], {"x": 1}, [])
    events = store.events.read(job["id"])
    types = [e["type"] for e in events]
    assert types == ["job.queued", "job.started", "job.progress", "job.requeued",
                     "job.started", "job.succeeded"]
    assert [e["data"].get("attempt") for e in events if e["type"] == "job.started"] == [1, 2]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    assert [e["id"] for e in store.events.read(job["id"], after=ids[2])] == ids[3:]
    deliveries = Deliveries(redis_client).for_job(job["id"])
    assert [d["type"] for d in deliveries] == ["job.started", "job.progress", "job.started",
                                               "job.succeeded"]
    assert sent == [d["id"] for d in deliveries]
    body = json.loads(Deliveries(redis_client).get(sent[-1])["body"])  # type: ignore[index]
    assert body["type"] == "job.succeeded" and body["data"]["status"] == "succeeded"
    assert body["data"]["result"] == {"x": 1} and body["data"]["id"] == job["id"]


def test_a_failing_sender_never_fails_the_job(redis_client: Any) -> None:
    store = JobStore(redis_client, lease_s=5.0)

    def broken(_: str) -> None:
        raise ConnectionError("broker down")

    store.events.sender = broken
    req = {**evaluate_request(num_samples=4), "webhook": "https://93.184.216.34/h"}
    job, _ = store.create(tenant="t", kind="evaluate", request=req, metadata={}, queue="cpu")
    assert store.start(job["id"], worker="w", max_attempts=1)[0] == "started"
    assert store.fail(job["id"], "boom", "it broke")
    assert store.status(job["id"]) == "failed"


def test_events_endpoint_pages_and_isolates_tenants(http: Any) -> None:
    r = http.post("/v1/jobs", json=evaluate_request(num_samples=4), headers=AUTH_A)
    job_id = r.get_json()["id"]
    page = http.get(f"/v1/jobs/{job_id}/events", headers=AUTH_A).get_json()
    assert [e["type"] for e in page["items"]] == ["job.queued"]
    assert http.get(f"/v1/jobs/{job_id}/events", headers=AUTH_B).status_code == 404
    assert http.get(f"/v1/jobs/{job_id}/deliveries", headers=AUTH_B).status_code == 404
    assert http.get(f"/v1/jobs/{job_id}/deliveries", headers=AUTH_A).get_json() == {"items": []}
    bad = http.get(f"/v1/jobs/{job_id}/events?after=zzz", headers=AUTH_A)
    assert bad.status_code == 422 and "after" in bad.get_json()["errors"]
