"""The fake API (kept for tests that inject server errors) answers like the real app.

Each case sends the same request to the fake and to the real app served in-process
(``liveapi``) and checks that what the SDK reads from the answer is the same.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from fakeapi import API_KEY, FakeAPI
from liveapi import API_KEY as LIVE_KEY
from liveapi import LiveAPI

from landscope import Job

BODY = {
    "kind": "evaluate",
    "model": {"architecture": {"type": "mlp", "input_dim": 2, "hidden": [2], "output_dim": 1}},
    "data": {"synthetic": {"name": "teacher_student", "num_samples": 8, "seed": 0}},
}


@pytest.fixture(params=["fake", "live"])
def server(request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    """``(base URL, auth headers)`` of the fake or of the real app."""
    if request.param == "fake":
        fake: FakeAPI = request.getfixturevalue("fake_api")
        return fake.url, {"Authorization": f"Bearer {API_KEY}"}
    live: LiveAPI = request.getfixturevalue("live_api")
    return live.url, {"Authorization": f"Bearer {LIVE_KEY}"}


def test_requires_bearer_key_with_problem_json(server: tuple[str, dict[str, str]]) -> None:
    url, _ = server
    r = requests.get(f"{url}/v1/jobs", timeout=5)
    assert r.status_code == 401
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["code"] == "unauthorized"


def test_validation_errors_are_nested_like_the_request(
    server: tuple[str, dict[str, str]],
) -> None:
    url, auth = server
    arch = {**BODY["model"]["architecture"], "hidden": [0]}  # type: ignore[dict-item]
    r = requests.post(f"{url}/v1/jobs", json={**BODY, "model": {"architecture": arch}},
                      headers=auth, timeout=5)
    assert r.status_code == 422
    assert r.headers["Content-Type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "validation_error"
    assert list(body["errors"]) == ["model"]
    assert list(body["errors"]["model"]) == ["architecture"]
    assert list(body["errors"]["model"]["architecture"]) == ["hidden"]


def test_idempotency_replays_and_rejects_mismatch(server: tuple[str, dict[str, str]]) -> None:
    url, auth = server
    headers = {**auth, "Idempotency-Key": "k1"}
    first = requests.post(f"{url}/v1/jobs", json=BODY, headers=headers, timeout=5)
    again = requests.post(f"{url}/v1/jobs", json=BODY, headers=headers, timeout=5)
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["id"] == again.json()["id"]
    other = requests.post(f"{url}/v1/jobs", json={**BODY, "seed": 1}, headers=headers, timeout=5)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_mismatch"


def test_fake_job_fields_are_the_real_ones(fake_api: FakeAPI, live_api: LiveAPI) -> None:
    def submit(url: str, key: str) -> dict[str, Any]:
        r = requests.post(f"{url}/v1/jobs", json=BODY, timeout=5,
                          headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 202
        return r.json()  # type: ignore[no-any-return]

    fake, live = submit(fake_api.url, API_KEY), submit(live_api.url, LIVE_KEY)
    assert set(fake) <= set(live), set(fake) - set(live)
    assert set(fake["progress"]) == set(live["progress"])
    for doc in (fake, live):
        job = Job.from_json(doc)
        assert job.status == "queued" and job.kind == "evaluate" and job.attempts == 0
