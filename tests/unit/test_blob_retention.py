"""Blob retention (expiry after LANDSCOPE_BLOB_TTL_S unused, visible as expires_at) and
the per-tenant cap on stored bytes (429 with Retry-After). Real app, private Redis; time
is moved by setting the records' expiry in Redis (PEXPIREAT in the past), never slept."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from landscope_service.storage.blobs import BlobService

from support import AUTH_A, AUTH_B

TTL = 3600
CAP = 1000


@pytest.fixture()
def app(redis_url: str, redis_client: Any, tmp_path: Path) -> Iterator[Any]:
    from landscope_service.api import create_app
    from landscope_service.settings import load_settings

    s = load_settings(environ={
        "LANDSCOPE_REDIS_URL": redis_url, "LANDSCOPE_DATA_DIR": str(tmp_path / "data"),
        "LANDSCOPE_API_KEYS": "tenant-a:key-a,tenant-b:key-b",
        "LANDSCOPE_BLOB_TTL_S": str(TTL), "LANDSCOPE_TENANT_BLOB_BYTES": str(CAP)})
    yield create_app({"TESTING": True}, settings=s)


@pytest.fixture()
def http(app: Any) -> Any:
    return app.test_client()


def _expire(redis_client: Any, tenant: str, blob_id: str) -> None:
    """Move time past this tenant's record of the blob (the record alone)."""
    assert redis_client.pexpireat(f"ls:blob:{tenant}:{blob_id.split(':')[1]}", 1)


def _epoch(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def test_expiry_is_visible_and_renewed_by_use(http: Any, redis_client: Any) -> None:
    up = http.post("/v1/blobs", data=b"w" * 100, headers=AUTH_A)
    assert up.status_code == 201
    blob = up.get_json()
    assert abs(_epoch(blob["expires_at"]) - (time.time() + TTL)) < 60
    key = f"ls:blob:tenant-a:{blob['id'].split(':')[1]}"
    redis_client.pexpire(key, 10_000)  # as if TTL - 10 s had passed unused
    got = http.get(f"/v1/blobs/{blob['id']}", headers=AUTH_A).get_json()
    assert abs(_epoch(got["expires_at"]) - (time.time() + 10)) < 5
    again = http.post("/v1/blobs", data=b"w" * 100, headers=AUTH_A)  # a use: renewed
    assert again.status_code == 200
    assert abs(_epoch(again.get_json()["expires_at"]) - (time.time() + TTL)) < 60
    assert redis_client.pttl(key) > (TTL - 60) * 1000


def test_a_job_reading_the_blob_renews_it(http: Any, redis_client: Any) -> None:
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((4, 3)), y=np.zeros((4, 1)))
    blob = http.post("/v1/blobs", data=buf.getvalue(), headers=AUTH_A).get_json()
    key = f"ls:blob:tenant-a:{blob['id'].split(':')[1]}"
    redis_client.pexpire(key, 10_000)
    req = {"kind": "evaluate", "loss": "mse",
           "model": {"architecture": {"type": "mlp", "input_dim": 3, "hidden": [4],
                                      "output_dim": 1, "activation": "tanh", "bias": True},
                     "init_seed": 0},
           "data": {"blob": blob["id"], "format": "npz"}}
    assert http.post("/v1/jobs", json=req, headers=AUTH_A).status_code == 202
    assert redis_client.pttl(key) > (TTL - 60) * 1000


def test_expired_blob_is_gone_and_its_bytes_go_with_the_last_owner(
        http: Any, app: Any, redis_client: Any) -> None:
    svc: BlobService = app.extensions["landscope"].blobs
    store = app.extensions["landscope"].store
    blob_id = http.post("/v1/blobs", data=b"shared", headers=AUTH_A).get_json()["id"]
    assert http.post("/v1/blobs", data=b"shared", headers=AUTH_B).status_code == 201
    path = f"blobs/sha256/{blob_id.split(':')[1]}"

    _expire(redis_client, "tenant-a", blob_id)
    assert http.get(f"/v1/blobs/{blob_id}", headers=AUTH_A).status_code == 404
    with pytest.raises(KeyError):
        svc.read("tenant-a", blob_id)
    svc.sweep()
    assert store.exists(path)  # tenant b still holds it
    assert http.get(f"/v1/blobs/{blob_id}", headers=AUTH_B).status_code == 200

    _expire(redis_client, "tenant-b", blob_id)
    assert svc.sweep() == 1  # tenant a left the list at the first sweep
    assert not store.exists(path)
    assert redis_client.smembers("ls:blobtenants") == set()
    assert not redis_client.exists(f"ls:blobowners:{blob_id.split(':')[1]}")


def test_tenant_cap_answers_429_with_retry_after(http: Any, app: Any,
                                                 redis_client: Any) -> None:
    first = http.post("/v1/blobs", data=b"a" * 600, headers=AUTH_A).get_json()
    key = f"ls:blob:tenant-a:{first['id'].split(':')[1]}"
    redis_client.pexpire(key, 125_500)  # the next expiry is in 125.5 s
    over = http.post("/v1/blobs", data=b"b" * 600, headers=AUTH_A)
    assert over.status_code == 429 and over.mimetype == "application/problem+json"
    body = over.get_json()
    assert body["code"] == "blob_quota_exceeded" and "LANDSCOPE_TENANT_BLOB_BYTES" in body["detail"]
    assert "600 of 1000 bytes" in body["errors"]["body"][0]
    assert int(over.headers["Retry-After"]) == math.ceil(125.5)
    assert list(redis_client.scan_iter("ls:blob:tenant-a:*")) == [key.encode()]  # not stored
    # The same bytes again are not new bytes; another tenant has its own cap.
    assert http.post("/v1/blobs", data=b"a" * 600, headers=AUTH_A).status_code == 200
    assert http.post("/v1/blobs", data=b"b" * 600, headers=AUTH_B).status_code == 201
    # At the cap exactly is allowed; once the first blob expires there is room again.
    assert http.post("/v1/blobs", data=b"c" * 400, headers=AUTH_A).status_code == 201
    assert http.post("/v1/blobs", data=b"d" * 1, headers=AUTH_A).status_code == 429
    _expire(redis_client, "tenant-a", first["id"])
    assert http.post("/v1/blobs", data=b"b" * 600, headers=AUTH_A).status_code == 201
    assert app.extensions["landscope"].blobs.usage("tenant-a") == 1000


def test_deleting_frees_the_cap(http: Any) -> None:
    blob = http.post("/v1/blobs", data=b"a" * 900, headers=AUTH_A).get_json()
    assert http.post("/v1/blobs", data=b"b" * 200, headers=AUTH_A).status_code == 429
    assert http.delete(f"/v1/blobs/{blob['id']}", headers=AUTH_A).status_code == 204
    assert http.post("/v1/blobs", data=b"b" * 200, headers=AUTH_A).status_code == 201


def test_service_without_ttl_never_expires(redis_client: Any, tmp_path: Path) -> None:
    from landscope_service.storage.store import LocalStore

    svc = BlobService(redis_client, LocalStore(tmp_path))
    meta, created = svc.put("t", b"bytes")
    assert created and meta["expires_at"] is None
    assert redis_client.pttl(f"ls:blob:t:{meta['id'].split(':')[1]}") == -1
    assert svc.read("t", meta["id"]) == b"bytes"


def test_expired_bytes_are_swept_without_any_upload(redis_url: str, redis_client: Any,
                                                     tmp_path: Path) -> None:
    """Once a period the API sweeps on any request (here /healthz): the bytes of a blob
    that expired go although nothing is uploaded. Time is the app's injected clock plus
    deleting the Redis key that elects the sweeping process (its period passed)."""
    from landscope_service.api import create_app
    from landscope_service.settings import load_settings
    from landscope_service.storage.blobs import SWEEP_EVERY_S

    now = [1_000.0]
    s = load_settings(environ={
        "LANDSCOPE_REDIS_URL": redis_url, "LANDSCOPE_DATA_DIR": str(tmp_path / "data"),
        "LANDSCOPE_API_KEYS": "tenant-a:key-a", "LANDSCOPE_BLOB_TTL_S": str(TTL)})
    app = create_app({"TESTING": True}, settings=s, clock=lambda: now[0])
    http, store = app.test_client(), app.extensions["landscope"].store
    blob_id = http.post("/v1/blobs", data=b"forgotten", headers=AUTH_A).get_json()["id"]
    path = f"blobs/sha256/{blob_id.split(':')[1]}"
    _expire(redis_client, "tenant-a", blob_id)
    redis_client.delete("ls:blobsweep")
    now[0] += SWEEP_EVERY_S / 2  # within this process's period: no sweep yet
    assert http.get("/healthz").status_code == 200 and store.exists(path)
    now[0] += SWEEP_EVERY_S
    assert http.get("/healthz").status_code == 200
    assert not store.exists(path)
    assert redis_client.smembers("ls:blobtenants") == set()
