"""Property-based run of the live API against its own OpenAPI document.

Bounded: LANDSCOPE_FUZZ_EXAMPLES examples per operation (default 25 in `make test`,
`make fuzz` runs 200). Checks: no 5xx, documented status codes and content types,
responses valid against their schemas.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from landscope_service.local import LocalStack

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("LANDSCOPE_FUZZ_EXAMPLES", "25"))


def test_api_conforms_to_its_schema(stack: LocalStack) -> None:
    """Every operation, EXAMPLES generated cases each (schemathesis' strategies driven
    by hypothesis directly: its pytest plugin does not load under pytest 9)."""
    from hypothesis import given

    api = schemathesis.openapi.from_url(stack.url + "/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    operations = [op.ok() for op in api.get_all_operations()]
    assert len(operations) >= 9
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": "Bearer key-a"},
                                   checks=checks, timeout=30)

        run()
