"""Chunked uploads through the real app on a private Redis, both storage backends.

Time is moved by setting an upload record's expiry in Redis (PEXPIREAT in the past),
never slept. Parts are 1 MiB (the smallest allowed) so the files stay a few MiB.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import AUTH_A, AUTH_B

MiB = 1024 * 1024
CAP = 8 * MiB


@pytest.fixture(params=["local", "redis"])
def app(request: Any, redis_url: str, redis_client: Any, tmp_path: Path) -> Iterator[Any]:
    from landscope_service.api import create_app
    from landscope_service.settings import load_settings

    s = load_settings(environ={
        "LANDSCOPE_REDIS_URL": redis_url, "LANDSCOPE_DATA_DIR": str(tmp_path / "data"),
        "LANDSCOPE_API_KEYS": "tenant-a:key-a,tenant-b:key-b",
        "LANDSCOPE_STORAGE": request.param,
        "LANDSCOPE_MAX_BODY_BYTES": str(2 * MiB),
        "LANDSCOPE_MAX_BLOB_BYTES": str(6 * MiB),
        "LANDSCOPE_TENANT_BLOB_BYTES": str(CAP)})
    yield create_app({"TESTING": True}, settings=s)


@pytest.fixture()
def http(app: Any) -> Any:
    return app.test_client()


def _file(size: int, seed: int = 0) -> bytes:
    return hashlib.shake_256(f"file {seed}".encode()).digest(size)


def _create(http: Any, data: bytes, *, part_size: int = MiB, declare: bool = True,
            auth: dict[str, str] = AUTH_A) -> Any:
    body: dict[str, Any] = {"size": len(data), "part_size": part_size}
    if declare:
        body["sha256"] = hashlib.sha256(data).hexdigest()
    return http.post("/v1/uploads", json=body, headers=auth)


def _put(http: Any, upload_id: str, n: int, data: bytes, auth: dict[str, str] = AUTH_A) -> Any:
    return http.put(f"/v1/uploads/{upload_id}/parts/{n}", data=data,
                    headers={**auth, "Content-Type": "application/octet-stream"})


def test_parts_in_any_order_with_one_failed_and_retried_give_the_sha256_blob(
        http: Any, app: Any) -> None:
    data = _file(2 * MiB + 12345)
    created = _create(http, data)
    assert created.status_code == 201, created.get_json()
    up = created.get_json()
    assert (up["parts"], up["missing"], up["received"]) == (3, [0, 1, 2], [])
    uid = up["id"]
    parts = [data[i:i + MiB] for i in range(0, len(data), MiB)]

    assert _put(http, uid, 2, parts[2]).get_json()["sha256"] == hashlib.sha256(
        parts[2]).hexdigest()
    assert _put(http, uid, 0, parts[0]).status_code == 200
    short = _put(http, uid, 1, parts[1][: MiB // 2])  # the part cut short: does not count
    assert short.status_code == 400 and "body" in short.get_json()["errors"]
    state = http.get(f"/v1/uploads/{uid}", headers=AUTH_A).get_json()
    assert state["missing"] == [1] and state["received"] == [0, 2]
    early = http.post(f"/v1/uploads/{uid}/complete", headers=AUTH_A)
    assert early.status_code == 409 and early.get_json()["code"] == "upload_incomplete"
    assert "1" in early.get_json()["detail"]

    assert _put(http, uid, 1, parts[1]).status_code == 200  # the retry
    done = http.post(f"/v1/uploads/{uid}/complete", headers=AUTH_A)
    assert done.status_code == 201, done.get_json()
    blob = done.get_json()
    assert blob["id"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert blob["size"] == len(data)
    store = app.extensions["landscope"].store
    assert store.get(f"blobs/sha256/{blob['id'].split(':')[1]}") == data
    assert http.get(f"/v1/blobs/{blob['id']}", headers=AUTH_A).status_code == 200
    assert http.get(f"/v1/uploads/{uid}", headers=AUTH_A).status_code == 404


def test_a_received_part_sent_again_and_cut_short_is_missing_again(http: Any) -> None:
    data = _file(2 * MiB, seed=1)
    uid = _create(http, data).get_json()["id"]
    assert _put(http, uid, 0, data[:MiB]).status_code == 200
    assert _put(http, uid, 0, data[:10]).status_code == 400
    assert http.get(f"/v1/uploads/{uid}", headers=AUTH_A).get_json()["missing"] == [0, 1]
    too_long = _put(http, uid, 1, data[MiB:] + b"x")
    assert too_long.status_code == 400 and "exactly" in too_long.get_json()["detail"]


def test_creating_the_same_file_again_resumes_the_open_upload(http: Any) -> None:
    data = _file(3 * MiB, seed=2)
    first = _create(http, data).get_json()
    assert _put(http, first["id"], 1, data[MiB:2 * MiB]).status_code == 200
    again = _create(http, data)
    assert again.status_code == 200
    assert again.get_json()["id"] == first["id"] and again.get_json()["missing"] == [0, 2]
    other = _create(http, data, auth=AUTH_B)  # another tenant: its own upload
    assert other.status_code == 201 and other.get_json()["id"] != first["id"]
    assert http.get(f"/v1/uploads/{first['id']}", headers=AUTH_B).status_code == 404
    assert _put(http, first["id"], 0, data[:MiB], auth=AUTH_B).status_code == 404


def test_bytes_other_than_declared_answer_422_and_the_upload_stays_open(http: Any) -> None:
    data = _file(2 * MiB, seed=3)
    uid = _create(http, data).get_json()["id"]
    wrong = bytearray(data[:MiB])
    wrong[5] ^= 1
    _put(http, uid, 0, bytes(wrong))
    _put(http, uid, 1, data[MiB:])
    bad = http.post(f"/v1/uploads/{uid}/complete", headers=AUTH_A)
    assert bad.status_code == 422 and "sha256" in bad.get_json()["errors"]
    state = http.get(f"/v1/uploads/{uid}", headers=AUTH_A).get_json()
    assert state["part_sha256"]["0"] != hashlib.sha256(data[:MiB]).hexdigest()
    assert state["part_sha256"]["1"] == hashlib.sha256(data[MiB:]).hexdigest()
    _put(http, uid, 0, data[:MiB])
    done = http.post(f"/v1/uploads/{uid}/complete", headers=AUTH_A)
    assert done.status_code == 201
    assert done.get_json()["id"] == "sha256:" + hashlib.sha256(data).hexdigest()


def test_undeclared_digest_and_the_same_bytes_already_stored(http: Any) -> None:
    data = _file(MiB + 1, seed=4)
    assert http.post("/v1/blobs", data=data, headers=AUTH_A).status_code == 201
    uid = _create(http, data, declare=False).get_json()["id"]
    _put(http, uid, 0, data[:MiB])
    _put(http, uid, 1, data[MiB:])
    done = http.post(f"/v1/uploads/{uid}/complete", headers=AUTH_A)
    assert done.status_code == 200  # the tenant held these bytes already
    assert done.get_json()["id"] == "sha256:" + hashlib.sha256(data).hexdigest()


def test_an_abandoned_upload_expires_and_its_parts_are_removed(
        http: Any, app: Any, redis_client: Any) -> None:
    from landscope_service.storage.uploads import UploadService

    data = _file(2 * MiB, seed=5)
    uid = _create(http, data).get_json()["id"]
    assert _put(http, uid, 0, data[:MiB]).status_code == 200
    services = app.extensions["landscope"]
    local = services.settings.storage == "local"
    part_file = Path(services.settings.data_dir) / "uploads" / f"{uid}.data"
    assert part_file.exists() if local else redis_client.exists(f"ls:uploadpart:{uid}:0")
    ttl = redis_client.ttl(f"ls:upload:{uid}")
    assert 0 < ttl <= services.settings.upload_ttl_s

    assert redis_client.pexpireat(f"ls:upload:{uid}", 1)  # time passes, no part arrives
    assert http.get(f"/v1/uploads/{uid}", headers=AUTH_A).status_code == 404
    gone = _put(http, uid, 1, data[MiB:])
    assert gone.status_code == 404 and "expire" in gone.get_json()["detail"]
    from landscope_service.api.uploads.views import _uploads

    with app.test_request_context():
        service: UploadService = _uploads()
    assert service.sweep() == [uid]
    assert not part_file.exists()
    assert not redis_client.exists(f"ls:uploadpart:{uid}:0")
    assert not redis_client.exists(f"ls:uploadparts:{uid}")
    assert service.reserved("tenant-a") == 0
    assert service.sweep() == []


def test_limits_name_the_field_and_the_setting(http: Any) -> None:
    big = http.post("/v1/uploads", json={"size": 6 * MiB + 1, "part_size": MiB},
                    headers=AUTH_A)
    assert big.status_code == 413 and "LANDSCOPE_MAX_BLOB_BYTES" in big.get_json()["detail"]
    assert "size" in big.get_json()["errors"]
    part = http.post("/v1/uploads", json={"size": 4 * MiB, "part_size": 3 * MiB},
                     headers=AUTH_A)
    assert part.status_code == 422 and "part_size" in part.get_json()["errors"]
    assert "LANDSCOPE_MAX_BODY_BYTES" in part.get_json()["detail"]
    small = http.post("/v1/uploads", json={"size": 4 * MiB, "part_size": 1000},
                      headers=AUTH_A)
    assert small.status_code == 422 and "part_size" in small.get_json()["errors"]
    for bad in ({"size": 0}, {"size": "9"}, {"size": 5, "sha256": "abc"},
                {"size": 5, "colour": 1}):
        r = http.post("/v1/uploads", json=bad, headers=AUTH_A)
        assert r.status_code == 422, (bad, r.get_json())
    assert http.get("/v1/uploads/up_nothing", headers=AUTH_A).status_code == 404
    uid = _create(http, _file(MiB, seed=6)).get_json()["id"]
    assert _put(http, uid, 1, b"x").status_code == 404
    assert http.delete(f"/v1/uploads/{uid}", headers=AUTH_A).status_code == 204
    assert http.get(f"/v1/uploads/{uid}", headers=AUTH_A).status_code == 404


def test_open_uploads_reserve_bytes_against_the_tenant_cap(http: Any) -> None:
    first = _create(http, _file(5 * MiB, seed=7))
    assert first.status_code == 201
    over = _create(http, _file(4 * MiB, seed=8))  # 5 + 4 > 8 MiB
    assert over.status_code == 429 and over.get_json()["code"] == "blob_quota_exceeded"
    assert "Retry-After" in over.headers and "size" in over.get_json()["errors"]
    assert _create(http, _file(3 * MiB, seed=9)).status_code == 201  # 5 + 3 fits
    assert http.delete(f"/v1/uploads/{first.get_json()['id']}", headers=AUTH_A).status_code \
        == 204
    assert _create(http, _file(4 * MiB, seed=8)).status_code == 201


def test_parts_are_streamed_in_slices_never_read_whole(http: Any, app: Any,
                                                       monkeypatch: Any) -> None:
    """The view hands the store the body a slice (1 MiB at most) at a time."""
    from landscope_service.storage import multipart

    seen: list[int] = []
    original = multipart._hash_into

    def spy(chunks: Any, length: int, write: Any) -> str:
        def counted() -> Iterator[bytes]:
            for c in chunks:
                seen.append(len(c))
                yield c
        return original(counted(), length, write)

    monkeypatch.setattr(multipart, "_hash_into", spy)
    monkeypatch.setattr(multipart, "SLICE", 64 * 1024)
    import landscope_service.api.uploads.views as views

    monkeypatch.setattr(views, "SLICE", 64 * 1024)
    data = os.urandom(MiB + 5)
    uid = _create(http, data, part_size=MiB + 5).get_json()["id"]
    assert _put(http, uid, 0, data).status_code == 200
    assert sum(seen) == len(data) and max(seen) <= 64 * 1024 and len(seen) >= 16
