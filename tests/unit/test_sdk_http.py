"""SDK transport: configuration and error mapping against the real API served in-process
(``liveapi``); retries and malformed answers against the fake API, whose errors can be
injected."""

from __future__ import annotations

import pickle
import socket
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import fakeapi as fk
import pytest
import requests
from liveapi import API_KEY, LiveAPI, LiveClock, live_client, succeeded

import landscope
from landscope import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    InternalServerError,
    LandscopeError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    UnprocessableEntityError,
    status_error_class,
)
from landscope._http import parse_retry_after

VALID = {
    "kind": "evaluate",
    "model": {"architecture": {"type": "mlp", "input_dim": 2, "hidden": [3], "output_dim": 1}},
    "data": {"synthetic": {"name": "teacher_student", "num_samples": 8, "seed": 0}},
}


HIDDEN_0 = "Must be between 1 and 65536."
FakeClock = fk.FakeClock
FixedRandom = fk.FixedRandom
make_client = fk.make_client


# -- configuration ---------------------------------------------------------------------


def test_client_needs_a_url_and_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LANDSCOPE_URL", raising=False)
    monkeypatch.delenv("LANDSCOPE_API_KEY", raising=False)
    with pytest.raises(LandscopeError, match="LANDSCOPE_URL"):
        Client()
    with pytest.raises(LandscopeError, match="LANDSCOPE_API_KEY"):
        Client("http://127.0.0.1:1")
    with pytest.raises(LandscopeError, match="http"):
        Client("ftp://example.org", api_key="k")


def test_client_reads_the_environment(monkeypatch: pytest.MonkeyPatch, live_api: LiveAPI) -> None:
    monkeypatch.setenv("LANDSCOPE_URL", live_api.url + "/v1/")
    monkeypatch.setenv("LANDSCOPE_API_KEY", API_KEY)
    with Client() as client:
        assert client.base_url == live_api.url
        job = client.jobs.submit(VALID)
    assert job.status == "queued"
    assert live_api.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"


# -- error mapping ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (413, PayloadTooLargeError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, InternalServerError),
        (418, APIError),
    ],
)
def test_status_error_class(status: int, cls: type[APIError]) -> None:
    assert status_error_class(status) is cls


def test_wrong_key_is_an_authentication_error(live_api: LiveAPI, live_clock: LiveClock) -> None:
    client = Client(live_api.url, api_key="wrong", sleep=live_clock.sleep)
    with pytest.raises(AuthenticationError) as info:
        client.jobs.get("job_X")
    assert info.value.status == 401
    assert info.value.code == "unauthorized"
    assert live_clock.sleeps == []


def test_other_tenants_job_is_not_found(live_api: LiveAPI, live_clock: LiveClock) -> None:
    with pytest.raises(NotFoundError, match="No job 'job_missing'"):
        live_client(live_api, live_clock).jobs.get("job_missing")
    theirs = live_api.add_job(tenant="tenant-b")
    with pytest.raises(NotFoundError, match=f"No job '{theirs['id']}'"):
        live_client(live_api, live_clock).jobs.get(theirs["id"])
    assert live_client(live_api, live_clock, api_key="key-b").jobs.get(theirs["id"]).id == (
        theirs["id"]
    )


def test_validation_error_shows_detail_and_field_errors_and_is_not_retried(
    live_api: LiveAPI, live_clock: LiveClock
) -> None:
    arch = {**VALID["model"]["architecture"], "hidden": [0]}  # type: ignore[dict-item]
    bad = {**VALID, "model": {"architecture": arch}, "colour": "red"}
    with pytest.raises(UnprocessableEntityError) as info:
        live_client(live_api, live_clock).jobs.submit(bad)
    err = info.value
    assert err.code == "validation_error"
    assert err.errors["model"] == {"architecture": {"hidden": {"0": [HIDDEN_0]}}}
    text = str(err)
    assert "HTTP 422 validation_error: The request is invalid" in text
    assert f"model.architecture.hidden.0: {HIDDEN_0}" in text
    assert "colour: Unknown field." in text
    assert len(live_api.calls("POST", "/v1/jobs")) == 1
    assert live_clock.sleeps == []
    assert isinstance(pickle.loads(pickle.dumps(err)), UnprocessableEntityError)


def test_field_errors_already_in_the_detail_are_not_repeated() -> None:
    errors = {"model": {"hidden": {"0": ["Must be positive."]}}, "seed": ["Not an integer."]}
    err = UnprocessableEntityError(
        422, "validation_error", "Invalid: model.hidden.0: Must be positive.", errors
    )
    assert str(err) == (
        "HTTP 422 validation_error: Invalid: model.hidden.0: Must be positive. "
        "(seed: Not an integer.)"
    )


def test_non_json_error_body_still_gives_a_readable_error(fake_api: Any, clock: FakeClock) -> None:
    fake_api.inject(
        "GET", "/v1/jobs/job_A", 502, b"<html>Bad gateway</html>", content_type="text/html"
    )
    with pytest.raises(InternalServerError, match="HTTP 502: <html>Bad gateway</html>"):
        make_client(fake_api, clock, max_retries=0).jobs.get("job_A")


def test_conflict_other_than_idempotency_in_progress_is_not_retried(
    live_api: LiveAPI, live_clock: LiveClock
) -> None:
    job = live_api.add_job(**succeeded())
    with pytest.raises(ConflictError) as info:
        live_client(live_api, live_clock).jobs.cancel(job["id"])
    assert info.value.code == "job_finished"
    assert len(live_api.calls("POST")) == 1
    assert live_clock.sleeps == []


def test_payload_too_large(live_api: LiveAPI, live_clock: LiveClock) -> None:
    limit = live_api.services.settings.max_body_bytes  # 2 MiB in the tests' settings
    with pytest.raises(PayloadTooLargeError) as info:
        live_client(live_api, live_clock).blobs.upload(b"x" * (limit + 1))
    assert info.value.code == "payload_too_large"
    assert f"larger than {limit} bytes (LANDSCOPE_MAX_BODY_BYTES)" in str(info.value)
    assert live_clock.sleeps == []


# -- retries ---------------------------------------------------------------------------


def test_retry_after_seconds_is_honoured(fake_api: Any, clock: FakeClock) -> None:
    fake_api.inject("GET", "/v1/blobs/sha256:ab", 503, headers={"Retry-After": "2"})
    fake_api.inject("GET", "/v1/blobs/sha256:ab", 429, headers={"Retry-After": "0.25"})
    with pytest.raises(NotFoundError):
        make_client(fake_api, clock).blobs.get("sha256:ab")
    assert clock.sleeps == [2.0, 0.25]


def test_retry_after_is_capped(fake_api: Any, clock: FakeClock) -> None:
    fake_api.inject("GET", "/v1/jobs/job_A", 503, headers={"Retry-After": "3600"})
    policy = RetryPolicy(max_retries=2, max_retry_after=7.0)
    with pytest.raises(NotFoundError):
        make_client(fake_api, clock, retry=policy).jobs.get("job_A")
    assert clock.sleeps == [7.0]


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 28, 15, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(header, now) == pytest.approx(30.0)
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None) is None


def test_retry_after_http_date_over_http(fake_api: Any, clock: FakeClock) -> None:
    when = datetime.now(UTC) + timedelta(seconds=20)
    fake_api.inject(
        "GET", "/v1/jobs/job_A", 503, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
    with pytest.raises(NotFoundError):
        make_client(fake_api, clock).jobs.get("job_A")
    assert len(clock.sleeps) == 1
    assert 17.0 <= clock.sleeps[0] <= 20.0


def test_backoff_grows_exponentially_to_a_cap(fake_api: Any, clock: FakeClock) -> None:
    fake_api.inject("GET", "/v1/jobs/job_A", 500, times=5)
    policy = RetryPolicy(max_retries=5, initial_delay=0.5, max_delay=3.0)
    with pytest.raises(NotFoundError):
        make_client(fake_api, clock, retry=policy).jobs.get("job_A")
    assert clock.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert len(fake_api.calls("GET")) == 6


def test_backoff_has_full_jitter(fake_api: Any, clock: FakeClock) -> None:
    fake_api.inject("GET", "/v1/jobs/job_A", 500, times=3)
    policy = RetryPolicy(max_retries=3, initial_delay=1.0, max_delay=100.0)
    client = make_client(fake_api, clock, retry=policy, rng=FixedRandom(0.25))
    with pytest.raises(NotFoundError):
        client.jobs.get("job_A")
    assert clock.sleeps == [0.25, 0.5, 1.0]


def test_retries_give_up_after_max_retries(fake_api: Any, clock: FakeClock) -> None:
    fake_api.inject("GET", "/v1/jobs/job_A", 503, times=10)
    with pytest.raises(InternalServerError) as info:
        make_client(fake_api, clock, max_retries=2).jobs.get("job_A")
    assert info.value.status == 503
    assert len(fake_api.calls("GET")) == 3
    assert len(clock.sleeps) == 2


def test_rate_limit_is_retried_then_raised(fake_api: Any, clock: FakeClock) -> None:
    fake_api.inject("GET", "/v1/jobs", 429, headers={"Retry-After": "1"}, times=10)
    with pytest.raises(RateLimitError):
        list(make_client(fake_api, clock, max_retries=1).jobs.list())
    assert clock.sleeps == [1.0]


def test_submit_reuses_one_idempotency_key_across_retries(fake_api: Any, clock: FakeClock) -> None:
    fake_api.inject("POST", "/v1/jobs", 503, times=1)
    fake_api.inject("POST", "/v1/jobs", 408, times=1)
    fake_api.inject(
        "POST",
        "/v1/jobs",
        409,
        fk.problem(409, "idempotency_in_progress", "Still processing this key."),
    )
    job = make_client(fake_api, clock).jobs.submit(VALID)
    calls = fake_api.calls("POST", "/v1/jobs")
    keys = {c.headers["idempotency-key"] for c in calls}
    assert len(calls) == 4
    assert len(keys) == 1
    assert uuid.UUID(keys.pop()).version == 4
    assert len(fake_api.jobs) == 1
    assert job.id in fake_api.jobs
    assert len(clock.sleeps) == 3


def test_each_submit_gets_its_own_key_unless_given(
    live_api: LiveAPI, live_clock: LiveClock
) -> None:
    client = live_client(live_api, live_clock)
    a = client.jobs.submit(VALID)
    b = client.jobs.submit(VALID)
    assert a.id != b.id
    c = client.jobs.submit(VALID, idempotency_key="run-7")
    d = client.jobs.submit(VALID, idempotency_key="run-7")
    assert c.id == d.id
    with pytest.raises(UnprocessableEntityError) as info:
        client.jobs.submit({**VALID, "seed": 3}, idempotency_key="run-7")
    assert info.value.code == "idempotency_mismatch"
    with pytest.raises(ValueError, match="255"):
        client.jobs.submit(VALID, idempotency_key="k" * 256)


def test_cancel_post_is_retried(fake_api: Any, clock: FakeClock) -> None:
    job = fake_api.add_job()
    fake_api.inject("POST", f"/v1/jobs/{job['id']}/cancel", 502)
    cancelled = make_client(fake_api, clock).jobs.cancel(job["id"])
    assert cancelled.status == "cancelled"
    assert len(fake_api.calls("POST")) == 2


def test_upload_from_a_path_is_rewound_on_retry(
    fake_api: Any, clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"0123456789" * 100)
    fake_api.inject("POST", "/v1/blobs", 503)
    blob = make_client(fake_api, clock).blobs.upload(path)
    bodies = [c.body for c in fake_api.calls("POST", "/v1/blobs")]
    assert bodies == [path.read_bytes(), path.read_bytes()]
    assert blob.size == 1000
    assert blob.id.startswith("sha256:")


def test_connection_refused_is_wrapped_after_retries(clock: FakeClock) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Client(
        f"http://127.0.0.1:{port}", api_key="k", max_retries=2, sleep=clock.sleep, timeout=2
    )
    with pytest.raises(APIConnectionError, match="Could not reach") as info:
        client.jobs.get("job_A")
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert len(clock.sleeps) == 2


def test_timeout_is_wrapped_after_retries(fake_api: Any, clock: FakeClock) -> None:
    fake_api.inject("GET", "/v1/jobs/job_A", 200, {}, delay=0.5, times=2)
    client = make_client(fake_api, clock, timeout=0.1, max_retries=1)
    with pytest.raises(APITimeoutError, match="timed out") as info:
        client.jobs.get("job_A")
    assert isinstance(info.value.__cause__, requests.Timeout)
    assert isinstance(info.value, APIConnectionError)
    assert len(clock.sleeps) == 1


def test_malformed_success_body_is_an_invalid_response(fake_api: Any, clock: FakeClock) -> None:
    fake_api.inject("GET", "/v1/jobs/job_A", 200, {"id": "job_A", "status": "exploded"})
    with pytest.raises(landscope.InvalidResponseError, match="unknown status 'exploded'"):
        make_client(fake_api, clock).jobs.get("job_A")
    fake_api.inject("GET", "/v1/jobs/job_B", 200, b"not json", content_type="text/plain")
    with pytest.raises(landscope.InvalidResponseError, match="Expected JSON"):
        make_client(fake_api, clock).jobs.get("job_B")


def test_retry_policy_rejects_negative_values() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
