"""The Redis job store: transitions, idempotency rules, leases and the reaper."""

from __future__ import annotations

import pytest

from landscope_service.jobs.reaper import reap
from landscope_service.jobs.store import (
    IdempotencyConflict,
    IdempotencyInProgress,
    JobStore,
    new_job_id,
)


@pytest.fixture()
def store(redis_client) -> JobStore:  # type: ignore[no-untyped-def]
    return JobStore(redis_client, lease_s=1.0)


def _create(store: JobStore, key: str | None = None, request: dict | None = None,
            tenant: str = "a") -> tuple[dict, bool]:
    return store.create(tenant=tenant, kind="evaluate", request=request or {"x": 1},
                        metadata={"run": "r1"}, queue="cpu", idempotency_key=key)


def test_ids_are_unique_and_time_ordered() -> None:
    ids = [new_job_id() for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(len(i) == 30 and i.startswith("job_") for i in ids)


def test_create_get_and_tenant_isolation(store: JobStore) -> None:
    job, created = _create(store)
    assert created and job["status"] == "queued" and job["attempts"] == 0
    assert job["expires_at"] and job["created_at"].endswith("Z")
    assert store.get(job["id"], tenant="a")["id"] == job["id"]
    assert store.get(job["id"], tenant="b") is None
    assert store.get("job_unknown", tenant="a") is None


def test_idempotency_same_request_returns_first_job(store: JobStore) -> None:
    first, created = _create(store, key="k1", request={"a": 1, "b": 2})
    again, created2 = _create(store, key="k1", request={"b": 2, "a": 1})  # key order ignored
    assert created and not created2 and again["id"] == first["id"]


def test_idempotency_different_request_conflicts(store: JobStore) -> None:
    _create(store, key="k1", request={"a": 1})
    with pytest.raises(IdempotencyConflict):
        _create(store, key="k1", request={"a": 2})


def test_idempotency_in_progress(store: JobStore) -> None:
    import hashlib
    import json

    digest = hashlib.sha256(b"k2").hexdigest()
    store.client.set(f"ls:idem:a:{digest}",
                     json.dumps({"fingerprint": JobStore.request_fingerprint(
                         "evaluate", {"a": 1}, {"run": "r1"}), "job_id": None}))
    with pytest.raises(IdempotencyInProgress):
        _create(store, key="k2", request={"a": 1})


def test_idempotency_keys_are_per_tenant(store: JobStore) -> None:
    a, _ = _create(store, key="k", tenant="a")
    b, created = _create(store, key="k", tenant="b", request={"other": True})
    assert created and a["id"] != b["id"]


def test_start_succeed_and_duplicate_delivery(store: JobStore) -> None:
    job, _ = _create(store)
    code, attempts, _ = store.start(job["id"], worker="w1", max_attempts=3)
    assert (code, attempts) == ("started", 1)
    assert store.start(job["id"], worker="w2", max_attempts=3)[0] == "busy"
    assert store.succeed(job["id"], {"loss": 1.0}, [])
    assert store.start(job["id"], worker="w2", max_attempts=3)[0] == "finished"
    got = store.get(job["id"])
    assert got["status"] == "succeeded" and got["result"] == {"loss": 1.0}
    assert got["finished_at"] is not None and store.client.ttl(f"ls:job:{job['id']}") > 0


def test_cancel_queued_job_never_starts(store: JobStore) -> None:
    job, _ = _create(store)
    assert store.request_cancel(job["id"]) == "cancelled"
    assert store.start(job["id"], worker="w", max_attempts=3)[0] == "finished"


def test_cancel_running_job_sets_flag(store: JobStore) -> None:
    job, _ = _create(store)
    store.start(job["id"], worker="w", max_attempts=3)
    assert store.request_cancel(job["id"]) == "running"
    assert store.cancel_requested(job["id"])
    assert store.get(job["id"])["cancel_requested"] is True


def test_lost_lease_is_requeued_then_failed_after_max_attempts(store: JobStore) -> None:
    job, _ = _create(store)
    sent: list[str] = []
    for attempt in (1, 2):
        code, n, _ = store.start(job["id"], worker="w", max_attempts=2)
        assert (code, n) == ("started", attempt)
        store.client.delete(f"ls:lease:{job['id']}")  # the worker died: its lease lapses
        actions = reap(store, lambda jid, q: sent.append(jid), max_attempts=2)
        assert actions == [(job["id"], "requeued" if attempt == 1 else "failed")]
    final = store.get(job["id"])
    assert final["status"] == "failed" and final["error"]["code"] == "worker_lost"
    assert sent == [job["id"]]


def test_live_lease_is_not_reaped(redis_client) -> None:  # type: ignore[no-untyped-def]
    """The lease lives lease_s after each renewal; its lapse is made with PEXPIRE, not sleep.

    lease_s is 10 minutes here so that no stall of the test can let it lapse on its own.
    """
    store = JobStore(redis_client, lease_s=600.0)
    job, _ = _create(store)
    lease = f"ls:lease:{job['id']}"
    _, _, token = store.start(job["id"], worker="w", max_attempts=3)
    assert 540_000 < store.client.pttl(lease) <= 600_000
    assert reap(store, lambda jid, q: None, max_attempts=3) == []
    store.client.pexpire(lease, 60_000)  # the lease ran down to a minute; a renewal restores it
    assert store.renew(job["id"], token)
    assert 540_000 < store.client.pttl(lease) <= 600_000
    assert not store.renew(job["id"], "another-token")  # only the holder renews
    assert reap(store, lambda jid, q: None, max_attempts=3) == []
    store.client.pexpire(lease, 0)  # lease_s passes without a renewal: the key expires
    assert not store.client.exists(lease)
    assert [a for _, a in reap(store, lambda jid, q: None, max_attempts=3)] == ["requeued"]


def test_list_filters_and_pagination(store: JobStore) -> None:
    ids = []
    for i in range(7):
        job, _ = store.create(tenant="a", kind="evaluate" if i % 2 else "other",
                              request={"i": i}, metadata={"run": f"r{i % 3}"}, queue="cpu")
        ids.append(job["id"])
    _create(store, tenant="b")
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = store.list(tenant="a", limit=3, cursor=cursor)
        seen += [j["id"] for j in page]
        if cursor is None or len(page) < 3:
            break
    assert seen == list(reversed(ids))
    evaluate, _ = store.list(tenant="a", kind="evaluate", limit=50)
    assert [j["id"] for j in evaluate] == [ids[i] for i in (5, 3, 1)]
    r1, _ = store.list(tenant="a", metadata={"run": "r1"}, limit=50)
    assert [j["id"] for j in r1] == [ids[i] for i in (4, 1)]


def test_idempotency_covers_metadata(store: JobStore) -> None:
    store.create(tenant="a", kind="evaluate", request={"x": 1}, metadata={"run": "1"},
                 queue="cpu", idempotency_key="k-meta")
    with pytest.raises(IdempotencyConflict):
        store.create(tenant="a", kind="evaluate", request={"x": 1}, metadata={"run": "2"},
                     queue="cpu", idempotency_key="k-meta")


def test_create_is_one_round_trip_with_record_index_counter_and_event(
        store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Idempotency key, job hash, tenant index, queue deadline, submissions counter and the
    queued event are written by one script; a replay writes nothing."""
    from redis.connection import Connection

    sent: list[int] = []
    real = Connection.send_packed_command

    def counting(self: Connection, *a: object, **k: object) -> None:
        sent.append(1)
        real(self, *a, **k)  # type: ignore[arg-type]

    _create(store, key="warm")  # the script is loaded once per connection pool
    monkeypatch.setattr(Connection, "send_packed_command", counting)
    job, created = store.create(tenant="a", kind="evaluate", request={"x": 1},
                                metadata={}, queue="cpu", idempotency_key="k1",
                                queue_timeout_s=30.0, estimate={"products": 3})
    assert created and len(sent) == 1
    monkeypatch.setattr(Connection, "send_packed_command", real)
    raw = store.raw(job["id"])
    assert raw is not None and raw["status"] == "queued" and raw["attempts"] == "0"
    assert store.get(job["id"], tenant="a")["estimate"] == {"products": 3}
    assert store.client.zscore("ls:tenant:a:jobs", job["id"]) is not None
    assert store.client.zscore("ls:queue_deadlines", job["id"]) == pytest.approx(
        float(raw["queue_deadline_at"]))
    assert store.client.hget("ls:m:submitted", "evaluate") == b"2"
    events = store.client.xrange(f"ls:jobevents:{job['id']}")
    assert [e[1][b"type"] for e in events] == [b"job.queued"]
    assert store.client.ttl(f"ls:jobevents:{job['id']}") > 0
    again, created2 = store.create(tenant="a", kind="evaluate", request={"x": 1},
                                   metadata={}, queue="cpu", idempotency_key="k1")
    assert not created2 and again["id"] == job["id"]
    assert store.client.hget("ls:m:submitted", "evaluate") == b"2"  # a replay counts nothing
    assert len(store.client.xrange(f"ls:jobevents:{job['id']}")) == 1


def test_iso_is_rfc3339_utc_with_microseconds() -> None:
    """``iso`` equals the strftime form it replaced, to the microsecond, whatever the
    fraction (including a whole second, where isoformat would drop it by default)."""
    import random
    from datetime import UTC, datetime

    from landscope_service.jobs.store import iso

    rng = random.Random(0)
    stamps = [0.0, 1.5, 1_796_213_433.0, 1_796_213_433.000001, 1_796_213_433.9999996,
              4_102_444_799.999999] + [rng.uniform(0, 4e9) for _ in range(2000)]
    for ts in stamps:
        want = datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert iso(ts) == want, ts
    assert iso(None) is None
    assert iso(1.5) == "1970-01-01T00:00:01.500000Z"
