"""Blobs: content-addressed, per tenant; deleting drops the bytes only with the last owner."""

from __future__ import annotations

from typing import Any

from support import AUTH_A, AUTH_B


def test_delete_is_per_tenant_and_bytes_go_with_the_last_owner(http: Any, app: Any) -> None:
    store = app.extensions["landscope"].store
    a = http.post("/v1/blobs", data=b"shared weights", headers=AUTH_A)
    b = http.post("/v1/blobs", data=b"shared weights", headers=AUTH_B)
    assert a.status_code == 201 and b.status_code == 201
    blob_id = a.get_json()["id"]
    assert b.get_json()["id"] == blob_id
    assert http.post("/v1/blobs", data=b"shared weights", headers=AUTH_A).status_code == 200
    key = f"blobs/sha256/{blob_id.split(':')[1]}"

    assert http.delete(f"/v1/blobs/{blob_id}", headers=AUTH_A).status_code == 204
    assert http.get(f"/v1/blobs/{blob_id}", headers=AUTH_A).status_code == 404
    assert http.get(f"/v1/blobs/{blob_id}", headers=AUTH_B).status_code == 200
    assert store.exists(key)  # tenant b still owns it

    assert http.delete(f"/v1/blobs/{blob_id}", headers=AUTH_B).status_code == 204
    assert not store.exists(key)
    again = http.delete(f"/v1/blobs/{blob_id}", headers=AUTH_B)
    assert again.status_code == 404 and again.mimetype == "application/problem+json"


def test_blob_ids_are_checked(http: Any) -> None:
    assert http.get("/v1/blobs/not-an-id", headers=AUTH_A).status_code == 404
    assert http.delete("/v1/blobs/sha256:" + "0" * 64, headers=AUTH_A).status_code == 404
    empty = http.post("/v1/blobs", data=b"", headers=AUTH_A)
    assert empty.status_code == 400 and "body" in empty.get_json()["errors"]
