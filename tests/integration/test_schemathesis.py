"""Property-based run of the live API against its own OpenAPI document.

Bounded: LANDSCOPE_FUZZ_EXAMPLES examples per operation and generation mode (positive:
valid by the schema; negative: invalid by it), 25 in `make test`, 200 in `make fuzz`.
Checks: no 5xx, documented status codes and content types, responses valid against
their schemas (every error body is one problem object, ``errors`` an object). The number
of cases run is printed and checked.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from landscope_service.local import LocalStack

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("LANDSCOPE_FUZZ_EXAMPLES", "25"))


@pytest.mark.timeout(300 + 10 * EXAMPLES)  # about 24 cases per example count, ~0.1 s each
def test_api_conforms_to_its_schema(stack: LocalStack) -> None:
    """Every operation, up to EXAMPLES generated cases per mode (schemathesis' strategies
    driven by hypothesis directly: its pytest plugin does not load under pytest 9)."""
    api = schemathesis.openapi.from_url(stack.url + "/openapi.json")
    # Not negative_data_rejection: every case is sent with a valid API key, so a case
    # whose only invalid part is a missing key is (rightly) accepted.
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    operations = [op.ok() for op in api.get_all_operations()]
    assert len(operations) >= 9
    counts: dict[str, int] = {}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        for op in operations:
            _fuzz(op, mode, checks, counts)
    print(f"schemathesis cases: {counts}")
    # Small operations have fewer distinct cases than EXAMPLES; most reach it.
    assert counts.get("positive", 0) >= EXAMPLES * len(operations) // 2
    assert counts.get("negative", 0) >= EXAMPLES * len(operations) // 4


def _fuzz(op: Any, mode: GenerationMode, checks: list[Any], counts: dict[str, int]) -> None:
    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        counts[mode.value] = counts.get(mode.value, 0) + 1
        case.call_and_validate(headers={"Authorization": "Bearer key-a"}, checks=checks,
                               timeout=30)

    try:
        run()
    except Unsatisfiable:
        # An operation with no parameters, body or key has no invalid request to make.
        assert mode is GenerationMode.NEGATIVE, op.label
