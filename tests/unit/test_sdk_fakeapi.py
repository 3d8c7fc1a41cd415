"""The fake API's own behaviour, pinned to docs/api.md (so SDK tests on it test the contract)."""

from __future__ import annotations

import requests
from fakeapi import API_KEY, FakeAPI


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


def test_fake_requires_bearer_key_with_problem_json(fake_api: FakeAPI) -> None:
    r = requests.get(f"{fake_api.url}/v1/jobs", timeout=5)
    assert r.status_code == 401
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["code"] == "unauthorized"


def test_fake_validation_errors_are_nested_like_the_request(fake_api: FakeAPI) -> None:
    body = {"kind": "evaluate", "model": {"architecture": {"hidden": [0]}}, "data": {}}
    r = requests.post(f"{fake_api.url}/v1/jobs", json=body, headers=_auth(), timeout=5)
    assert r.status_code == 422
    assert r.json()["errors"] == {
        "model": {"architecture": {"hidden": ["Must be a list of positive integers."]}}
    }


def test_fake_idempotency_replays_and_rejects_mismatch(fake_api: FakeAPI) -> None:
    body = {"kind": "evaluate", "model": {"architecture": {"hidden": [2]}}, "data": {}}
    headers = {**_auth(), "Idempotency-Key": "k1"}
    first = requests.post(f"{fake_api.url}/v1/jobs", json=body, headers=headers, timeout=5)
    again = requests.post(f"{fake_api.url}/v1/jobs", json=body, headers=headers, timeout=5)
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["id"] == again.json()["id"]
    other = requests.post(
        f"{fake_api.url}/v1/jobs", json={**body, "seed": 1}, headers=headers, timeout=5
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_mismatch"
