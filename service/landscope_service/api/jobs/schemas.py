"""Request and response schemas of ``/v1/jobs``."""

from __future__ import annotations

from typing import Any

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates,
)

from ...modelspec.schemas import DataSchema, ModelSchema
from ...strict import StrictSchema

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")


_Strict = StrictSchema  # the one strict base of request schemas (landscope_service.strict)


def validate_metadata(value: dict[str, Any]) -> None:
    if len(value) > MAX_METADATA_PAIRS:
        raise ValidationError(
            f"At most {MAX_METADATA_PAIRS} metadata pairs are allowed; got {len(value)}."
        )
    errors: dict[str, list[str]] = {}
    for k, v in value.items():
        if not 1 <= len(k) <= MAX_METADATA_KEY:
            errors[k] = [f"Keys must have 1 to {MAX_METADATA_KEY} characters."]
        elif len(v) > MAX_METADATA_VALUE:
            errors[k] = [f"Values must have at most {MAX_METADATA_VALUE} characters."]
    if errors:
        raise ValidationError(errors)


class JobRequestSchema(_Strict):
    """A job to run."""

    kind = fields.String(required=True, metadata={"description": "The diagnostic to run."})
    model = fields.Nested(ModelSchema, required=True)
    data = fields.Nested(DataSchema, required=True)
    loss = fields.String(
        load_default="mse", validate=validate.OneOf(["mse", "cross_entropy"]),
        metadata={"description": "Mean-reduced loss, as PyTorch computes it."},
    )
    options = fields.Dict(
        keys=fields.String(), load_default=dict,
        metadata={"description": "Per-kind options: the schema is the kind's *Options "
                                 "component (e.g. HessianSpectrumOptions); see docs/kinds/."},
    )
    device = fields.String(
        load_default="auto", validate=validate.OneOf(["auto", "cpu", "cuda"]),
        metadata={"description": "cuda jobs go to the gpu queue; auto uses a GPU when the "
                                 "worker has one."},
    )
    dtype = fields.String(load_default="float32",
                          validate=validate.OneOf(["float32", "float64"]))
    seed = fields.Integer(strict=True, load_default=0,
                          validate=validate.Range(min=0, max=2**63 - 1))
    batch_size = fields.Integer(
        strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1),
        metadata={"description": "Samples per batch for accumulated products (default: all)."},
    )
    max_runtime_s = fields.Integer(
        strict=True, validate=validate.Range(min=1, max=30 * 24 * 3600),
        metadata={"description": "Run-time limit in seconds: past it the job fails with "
                                 "deadline_exceeded, its progress kept. Default and ceiling: "
                                 "the tenant's limit (LANDSCOPE_TENANT_MAX_RUNTIME_S, "
                                 "LANDSCOPE_MAX_RUNTIME_S)."},
    )
    queue_timeout_s = fields.Integer(
        strict=True, validate=validate.Range(min=1, max=30 * 24 * 3600),
        metadata={"description": "Queue deadline in seconds: a job not started this long "
                                 "after its submit ends expired (default "
                                 "LANDSCOPE_QUEUE_TIMEOUT_S)."},
    )
    metadata = fields.Dict(
        keys=fields.String(), values=fields.String(), load_default=dict,
        validate=validate_metadata,
        metadata={"description": "The caller's string pairs (<= 16; keys <= 64, values <= 512 "
                                 "characters), filterable in the list."},
    )

    webhook = fields.String(
        validate=validate.Length(min=1, max=2048),
        metadata={"description": "An https URL that receives signed events of this job "
                                 "(Standard Webhooks; see docs/integrations.md). Private, "
                                 "loopback and link-local hosts are refused unless "
                                 "LANDSCOPE_WEBHOOK_ALLOW_PRIVATE."},
    )
    webhook_events = fields.List(
        fields.String(validate=validate.OneOf(
            ["started", "progress", "succeeded", "failed", "cancelled", "expired"])),
        validate=validate.Length(min=1),
        metadata={"description": "Events sent to the webhook (default: all but progress; "
                                 "progress at most once a second)."},
    )

    @validates("kind")
    def _kind(self, value: str, **_: Any) -> None:
        from ...jobs.registry import kinds

        known = sorted(kinds())
        if value not in known:
            raise ValidationError(f"Unknown kind {value!r}; expected one of {', '.join(known)}.")


class ProgressSchema(Schema):
    stage = fields.String()
    fraction = fields.Float()
    message = fields.String()


class JobErrorSchema(Schema):
    code = fields.String()
    message = fields.String()


class ArtifactSchema(Schema):
    name = fields.String()
    media_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()


class LimitsSchema(Schema):
    max_runtime_s = fields.Float(allow_none=True, metadata={
        "description": "Run-time limit in force (null: none)."})
    queue_deadline_at = fields.String(allow_none=True, metadata={
        "description": "A job still queued at this time ends expired (null: never)."})


class JobSchema(Schema):
    """A job and everything known about it.

    ``status``: queued, running, then succeeded, failed or cancelled; a job not started
    before its queue deadline ends expired. All but queued and running are final.
    """

    class Meta:
        unknown = EXCLUDE

    id = fields.String()
    kind = fields.String()
    status = fields.String(validate=validate.OneOf(STATUSES))
    progress = fields.Nested(ProgressSchema)
    created_at = fields.String()
    started_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)
    expires_at = fields.String(allow_none=True)
    metadata = fields.Dict(keys=fields.String(), values=fields.String())
    request = fields.Dict()
    result = fields.Dict(allow_none=True)
    error = fields.Nested(JobErrorSchema, allow_none=True)
    artifacts = fields.List(fields.Nested(ArtifactSchema))
    cancel_requested = fields.Boolean()
    attempts = fields.Integer()
    execution = fields.Dict(
        allow_none=True,
        metadata={"description": "Where the job ran: the worker of its task, and how many of "
                                 "its independent pieces each worker computed."},
    )
    estimate = fields.Dict(
        allow_none=True,
        metadata={"description": "Submit-time cost estimate: curvature products, memory and "
                                 "a time range from this worker pool's measured rates (see "
                                 "docs/estimates.md)."},
    )
    limits = fields.Nested(LimitsSchema)


class JobListSchema(Schema):
    items = fields.List(fields.Nested(JobSchema))
    next_cursor = fields.String(allow_none=True)


class JobListQuerySchema(Schema):
    """Filters. Metadata filters are ``metadata.<key>=<value>`` (repeatable keys)."""

    class Meta:
        unknown = EXCLUDE  # metadata.<key> filters are read from the raw query string

    status = fields.String(validate=validate.OneOf(STATUSES))
    kind = fields.String(validate=validate.Length(min=1, max=64))
    limit = fields.Integer(strict=False, load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(min=1, max=200))


class JobGetQuerySchema(_Strict):
    wait = fields.Float(
        load_default=0.0, validate=validate.Range(min=0.0, max=30.0),
        metadata={"description": "Long poll: answer as soon as the job is finished, or after "
                                 "this many seconds (at most 30) with its current state."},
    )
