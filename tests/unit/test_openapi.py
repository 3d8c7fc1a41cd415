"""The committed OpenAPI document is the one the app generates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from landscope_service.api.openapi import generate

COMMITTED = Path(__file__).resolve().parents[2] / "service/landscope_service/api/openapi.json"


def test_committed_openapi_matches_app() -> None:
    import difflib

    committed = json.dumps(json.loads(COMMITTED.read_text()), indent=1, sort_keys=True)
    current = json.dumps(json.loads(json.dumps(generate())), indent=1, sort_keys=True)
    if committed != current:
        diff = list(difflib.unified_diff(committed.splitlines(), current.splitlines(),
                                         "committed", "app", lineterm="", n=1))
        pytest.fail("The API changed: regenerate with `make openapi` and commit the result.\n"
                    + "\n".join(diff[:40]), pytrace=False)


def test_openapi_declares_problem_errors_and_auth() -> None:
    spec = generate()
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    default = spec["components"]["responses"]["DEFAULT_ERROR"]
    assert list(default["content"]) == ["application/problem+json"]
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel", "/v1/blobs",
            "/healthz", "/readyz"} <= set(spec["paths"])


def test_docs_page_is_served(http) -> None:  # type: ignore[no-untyped-def]
    resp = http.get("/docs")
    assert resp.status_code == 200 and b"/v1/jobs" in resp.data
    assert http.get("/openapi.json").get_json()["openapi"].startswith("3.1")


def test_every_kind_documents_its_options() -> None:
    from landscope_service.jobs.registry import kinds

    schemas = generate()["components"]["schemas"]
    for name in kinds():
        component = "".join(p.title() for p in name.split("_")) + "Options"
        assert component in schemas, component
    assert "top_k" in schemas["HessianSpectrumOptions"]["properties"]
