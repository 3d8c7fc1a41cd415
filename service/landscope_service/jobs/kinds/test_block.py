"""Test-only job kind ``test_block``: blocks until the test creates its gate file.

Registered only when ``LANDSCOPE_TEST_KINDS`` is true (see ``jobs/registry.py``); never in
the public OpenAPI document. The runner is
``landscope_service.diagnostics.blocking:run_test_block``; docs in
``docs/adding-a-kind.md`` ("Testing with test_block").
"""

from __future__ import annotations

from marshmallow import fields, validate

from .base import KindSpec, OptionsSchema

__all__ = ["KIND", "TestBlockOptionsSchema"]


class TestBlockOptionsSchema(OptionsSchema):
    """Options of ``test_block``."""

    __test__ = False  # not a pytest class

    gate = fields.String(required=True, validate=validate.Length(min=1, max=4096),
                         metadata={"description": "File whose existence releases the job."})
    started = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(min=1, max=4096),
                            metadata={"description": "File the runner writes its pid to "
                                                     "once it waits at the gate."})
    steps = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=1000),
                           metadata={"description": "Progress steps reported before waiting."})
    poll_s = fields.Float(load_default=0.02, validate=validate.Range(min=0.001, max=1.0),
                          metadata={"description": "Seconds between checks of the gate."})
    timeout_s = fields.Float(load_default=300.0, validate=validate.Range(min=0.01, max=3600.0),
                             metadata={"description": "Fail when the gate has not appeared "
                                                      "after this long."})
    fail = fields.String(load_default=None, allow_none=True,
                         metadata={"description": "After release, fail with this message."})
    ignore_cancel = fields.Boolean(load_default=False,
                                   metadata={"description": "Never call the cancellation check "
                                                            "(tests of the hard stop)."})


KIND = KindSpec(
    name="test_block",
    options_schema=TestBlockOptionsSchema,
    runner="landscope_service.diagnostics.blocking:run_test_block",
    summary="Test only: blocks until a gate file exists; progress, cancel, fail on request.",
)
