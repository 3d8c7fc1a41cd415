"""Submitting a job: rate limit, validation, the job record, the queue.

Everything the API can check before a job exists is checked here, so bad input is a
4xx naming the field, never a job that dies later on something knowable at submit time.
The API view only parses HTTP and calls :meth:`Submissions.submit`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, ValidationError

from ..diagnostics.cost import Rates
from ..modelspec.facts import submit_context
from ..settings import Settings
from ..storage.blobs import BlobService, TenantBlobs
from .deadlines import resolve_limits
from .dispatch import Dispatcher, queue_for
from .errors import ConflictError, InvalidRequestError, UnavailableError
from .estimate import estimate_job, pool_rates, work_per_sample
from .kinds.base import KindSpec, SubmitContext
from .limits import ActiveJobCaps
from .ratelimit import SubmitRateLimiter
from .registry import kinds
from .store import IdempotencyConflict, IdempotencyInProgress, JobStore, new_job_id
from .webhooks import check_webhook_url

__all__ = ["Submissions", "check_request", "split_check_errors", "validate_request"]

_RATES_TTL_S = 10.0

log = logging.getLogger("landscope.api")


_OPTION_SCHEMAS: dict[type[Schema], Schema] = {}


def _options_schema(spec: KindSpec) -> Schema:
    """One instance per kind's options schema class (an instance per submit costs more
    than the load itself; loads share nothing between calls)."""
    cls = spec.options_schema
    inst = _OPTION_SCHEMAS.get(cls)
    if inst is None:
        inst = _OPTION_SCHEMAS[cls] = cls()
    return inst


def split_check_errors(messages: Any) -> dict[str, Any]:
    """Kind checks name options fields; a key starting with '^' is a top-level field."""
    top: dict[str, Any] = {}
    opts: dict[str, Any] = {}
    if not isinstance(messages, dict):
        return {"options": messages}
    for k, v in messages.items():
        if isinstance(k, str) and k.startswith("^"):
            top[k[1:]] = v
        else:
            opts[k] = v
    if opts:
        top["options"] = opts
    return top


def _as_object(messages: Any, field: str) -> dict[str, Any]:
    """marshmallow messages as a field object (a bare list belongs to ``field``)."""
    return messages if isinstance(messages, dict) else {field: messages}


def validate_request(
    req: dict[str, Any],
    *,
    settings: Settings,
    jobs: JobStore,
    read_blob: Callable[[str], bytes],
) -> KindSpec:
    """Check a loaded request against its kind; fills ``req["options"]`` with defaults.

    Raises :class:`InvalidRequestError` (422) naming the fields that are wrong.
    """
    return check_request(req, settings=settings, jobs=jobs, read_blob=read_blob)[0]


def check_request(
    req: dict[str, Any],
    *,
    settings: Settings,
    jobs: JobStore,
    read_blob: Callable[[str], bytes],
    tenant: str | None = None,
) -> tuple[KindSpec, SubmitContext]:
    """:func:`validate_request`, also returning the request's facts (P, N, shapes).

    With ``tenant``, kind checks may look up that tenant's jobs (``SubmitContext.get_job``).
    """
    spec = kinds()[req["kind"]]
    if req.get("webhook_events") and not req.get("webhook"):
        raise InvalidRequestError(
            "webhook_events needs a webhook URL.",
            errors={"webhook_events": ["Send webhook (an https URL) too, or drop this field."]})
    if req.get("webhook"):
        why = check_webhook_url(req["webhook"], allow_private=settings.webhook_allow_private)
        if why is not None:
            raise InvalidRequestError("The webhook URL cannot be used.", code="invalid_webhook",
                                      errors={"webhook": [why]})
    if req["device"] == "cuda" and settings.require_gpu_worker and not any(
        "gpu" in w.get("queues", []) for w in jobs.workers()
    ):
        raise InvalidRequestError(
            "No GPU worker is running, so a device 'cuda' job would wait for ever. "
            "Submit with device 'auto' or 'cpu', or start a worker on the gpu queue.",
            code="no_gpu_worker",
            errors={"device": ["No worker serves the gpu queue; use 'auto' or 'cpu'."]})
    try:
        req["options"] = _options_schema(spec).load(req["options"])
    except ValidationError as e:
        raise InvalidRequestError(f"Invalid options for kind {spec.name!r}.",
                             errors={"options": e.messages}) from None
    try:
        ctx = submit_context(req, read_blob)
    except ValidationError as e:
        raise InvalidRequestError("The model, data and loss do not fit together.",
                             errors=_as_object(e.messages, "body")) from None
    if tenant is not None:
        ctx = dataclasses.replace(ctx, get_job=lambda job_id: jobs.get(job_id, tenant=tenant))
    if spec.check is not None:
        try:
            spec.check(req["options"], ctx)
        except ValidationError as e:
            raise InvalidRequestError(f"Invalid options for kind {spec.name!r}.",
                                 errors=split_check_errors(e.messages)) from None
    return spec, ctx


@dataclass
class Submissions:
    """The submit path of the API, with its collaborators."""

    settings: Settings
    jobs: JobStore
    blobs: BlobService
    limiter: SubmitRateLimiter
    dispatcher: Dispatcher
    caps: ActiveJobCaps
    _rates_cache: dict[str, tuple[float, Rates]] = field(default_factory=dict, init=False,
                                                         repr=False)

    def _rates(self, queue: str) -> Rates:
        """The pool's measured per-product rates, read from the heartbeats at most every
        ``_RATES_TTL_S`` seconds (not on every submit)."""
        now = time.monotonic()
        cached = self._rates_cache.get(queue)
        if cached is None or now - cached[0] > _RATES_TTL_S:
            cached = (now, pool_rates(self.jobs.workers(), queue))
            self._rates_cache[queue] = cached
        return cached[1]

    def submit(self, tenant: str, req: dict[str, Any],
               idempotency_key: str | None = None) -> tuple[dict[str, Any], bool]:
        """Validate, record and enqueue a loaded request; returns ``(job, created)``.

        ``created`` is False when an Idempotency-Key replays an earlier job.
        """
        self.limiter.hit(tenant)

        read_blob = TenantBlobs(self.blobs, tenant)  # bytes, or the file (streamed data)
        _, facts = check_request(req, settings=self.settings, jobs=self.jobs,
                                 read_blob=read_blob, tenant=tenant)
        queue = queue_for(req)
        limits = resolve_limits(req, self.settings, tenant)
        work = work_per_sample(req["model"]["architecture"], info=facts.info) or facts.num_params
        estimate = estimate_job(req, num_params=facts.num_params,
                                num_samples=facts.num_samples, rates=self._rates(queue),
                                outputs=facts.output_dim, work=work)
        metadata = req.pop("metadata")
        # The ids are chosen first: the task id is recorded with the job (a cancel revokes
        # it) in the round trip that creates it, which also checks the tenant's caps.
        job_id, task_id = new_job_id(), str(uuid.uuid4())
        # The Celery message is built now and pushed by the script that creates the job
        # (one round trip; a replay pushes nothing); None: it is sent after, as before.
        try:
            push = self.dispatcher.prepare(job_id, queue, task_id=task_id)
        except Exception as e:  # broker down: no job is created
            log.exception("could not build the task message of %s", job_id)
            raise UnavailableError("The job queue is unavailable; retry shortly.",
                                   retry_after=5) from e
        try:
            job, created = self.jobs.create(
                tenant=tenant, kind=req["kind"], request=req, metadata=metadata,
                queue=queue, idempotency_key=idempotency_key, estimate=estimate,
                max_runtime_s=limits.max_runtime_s, queue_timeout_s=limits.queue_timeout_s,
                job_id=job_id, fields={"task_id": task_id},
                push=None if push is None else (push.key, push.payload),
                caps=self.caps,
            )
        except IdempotencyConflict:
            raise InvalidRequestError(
                "This Idempotency-Key was used with a different request; use a new key.",
                code="idempotency_mismatch") from None
        except IdempotencyInProgress:
            raise ConflictError(
                "A request with this Idempotency-Key is still being processed; retry.",
                code="idempotency_in_progress", retry_after=1) from None
        if not created:
            return job, False
        if push is None:
            try:
                self.dispatcher.send(job_id, queue, task_id=task_id)
            except Exception as e:  # broker down: do not leave a job nobody will run
                log.exception("could not enqueue %s", job["id"])
                self.jobs.fail(job["id"], "enqueue_failed", f"The queue is unavailable: {e}")
                raise UnavailableError("The job queue is unavailable; retry shortly.",
                                       retry_after=5) from e
        log.info("job submitted", extra={"job_id": job["id"], "tenant": tenant})
        return job, True
