"""Blob retention and the per-tenant byte cap through real processes and the SDK.

Time is moved by setting a blob record's expiry in Redis (PEXPIRE / PEXPIREAT), never by
sleeping; the worker is held on a ``test_block`` job so that its read of the blob happens
after the record was aged.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import requests

import landscope
from landscope_service.local import LocalStack

from support import block_request

pytestmark = pytest.mark.integration

DEFAULT_TTL = 30 * 24 * 3600  # LANDSCOPE_BLOB_TTL_S default


def _until(what: str, predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout} s")
        time.sleep(0.02)


def _npz() -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(1)
    np.savez(buf, x=rng.normal(size=(8, 3)), y=rng.normal(size=(8, 1)))
    return buf.getvalue()


def _job(blob_id: str) -> dict[str, Any]:
    return {"kind": "evaluate", "loss": "mse",
            "model": {"architecture": {"type": "mlp", "input_dim": 3, "hidden": [4],
                                       "output_dim": 1, "activation": "tanh", "bias": True},
                      "init_seed": 0},
            "data": {"blob": blob_id, "format": "npz"}}


def test_expiry_is_visible_renewed_by_jobs_and_final(stack: LocalStack,
                                                      client_a: landscope.Client,
                                                      tmp_path: Path) -> None:
    r = redis.Redis.from_url(stack.redis_url)
    blob = client_a.blobs.upload(_npz())
    assert blob.expires_at is not None
    assert abs(blob.expires_at.timestamp() - (time.time() + DEFAULT_TTL)) < 120
    key = f"ls:blob:tenant-a:{blob.id.split(':')[1]}"

    r.pexpire(key, 10_000)  # as if it had lain unused for TTL - 10 s
    aged = client_a.blobs.get(blob.id).expires_at
    assert aged is not None and abs(aged.timestamp() - (time.time() + 10)) < 5

    # The worker is busy; the submit reads (and renews) the blob; it is aged again; the
    # worker's own read when the job runs renews it once more.
    gate, started = tmp_path / "gate", tmp_path / "started"
    blocker = client_a.jobs.submit(block_request(str(gate), started=str(started)))
    _until("worker busy", started.exists)
    job = client_a.jobs.submit(_job(blob.id))
    assert r.pttl(key) > (DEFAULT_TTL - 120) * 1000
    r.pexpire(key, 10_000)
    gate.touch()
    assert client_a.jobs.wait(blocker.id, timeout=60).status == "succeeded"
    assert client_a.jobs.wait(job.id, timeout=120).status == "succeeded"
    assert r.pttl(key) > (DEFAULT_TTL - 120) * 1000

    assert r.pexpireat(key, 1)  # unused past its TTL
    with pytest.raises(landscope.NotFoundError):
        client_a.blobs.get(blob.id)
    with pytest.raises(landscope.UnprocessableEntityError) as e:
        client_a.jobs.submit(_job(blob.id))
    assert "data" in e.value.errors and "upload it" in str(e.value.errors["data"])
    again = client_a.blobs.upload(_npz())  # the bytes can always be uploaded again
    assert again.id == blob.id and again.expires_at is not None


@pytest.fixture(scope="module")
def capped() -> Iterator[LocalStack]:
    st = LocalStack(api_keys="tenant-a:key-a,tenant-b:key-b", workers=0,
                    env={"LANDSCOPE_TENANT_BLOB_BYTES": "1000", "LANDSCOPE_BLOB_TTL_S": "3600"})
    try:
        st.start(timeout=120)
    except BaseException:
        print(st.logs())
        st.stop()
        raise
    yield st
    st.stop()


def test_tenant_byte_cap_is_429_with_retry_after(capped: LocalStack) -> None:
    r = redis.Redis.from_url(capped.redis_url)
    with landscope.Client(capped.url, api_key="key-a", max_retries=0) as a, \
            landscope.Client(capped.url, api_key="key-b", max_retries=0) as b:
        first = a.blobs.upload(b"1" * 600)
        r.pexpire(f"ls:blob:tenant-a:{first.id.split(':')[1]}", 42_000)
        resp = requests.post(capped.url + "/v1/blobs", data=b"2" * 600, timeout=10,
                             headers={"Authorization": "Bearer key-a"})
        assert resp.status_code == 429, resp.text
        assert resp.headers["Retry-After"] == "42"
        assert resp.json()["code"] == "blob_quota_exceeded"
        with pytest.raises(landscope.RateLimitError):
            a.blobs.upload(b"2" * 600)
        assert b.blobs.upload(b"2" * 600).size == 600  # caps are per tenant
        assert r.pexpireat(f"ls:blob:tenant-a:{first.id.split(':')[1]}", 1)
        second = a.blobs.upload(b"2" * 600)  # the expired blob no longer counts
        assert second.expires_at is not None
        assert second.expires_at > datetime.now(UTC)
