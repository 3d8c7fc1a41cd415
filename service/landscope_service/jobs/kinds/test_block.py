"""Test-only job kind ``test_block``: blocks until the test creates its gate file.

Registered only when ``LANDSCOPE_TEST_KINDS`` is true (see ``jobs/registry.py``); never in
the public OpenAPI document. Options: ``diagnostics/options/test_block.py``; runner:
``diagnostics/blocking.py``; docs in ``docs/adding-a-kind.md`` ("Testing with test_block").
"""

from __future__ import annotations

from .base import KindSpec

__all__ = ["KIND", "TestBlockOptionsSchema"]

KIND = KindSpec.from_table(
    "test_block",
    summary="Test only: blocks until a gate file exists; progress, cancel, fail on request.",
)

TestBlockOptionsSchema = KIND.options_schema
