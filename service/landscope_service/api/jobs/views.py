"""``/v1/jobs``: submit, list, get, cancel, artifacts. Views never block on a task."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from typing import Any

from flask import Response, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import ValidationError

from ...jobs.kinds.base import KindSpec
from ...jobs.reaper import reap_one
from ...jobs.registry import kinds
from ...jobs.store import FINISHED, IdempotencyConflict, IdempotencyInProgress
from ...modelspec.facts import submit_context
from ...storage.blobs import artifact_key
from ..auth import require_tenant
from ..errors import abort
from ..extensions import Services, send_job, services
from .schemas import (
    JobGetQuerySchema,
    JobListQuerySchema,
    JobListSchema,
    JobRequestSchema,
    JobSchema,
)

log = logging.getLogger("landscope.api")

blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs",
                description="Submit diagnostics, follow their progress, fetch results.")
blp.before_request(require_tenant)

IDEMPOTENCY_HEADER = {
    "in": "header", "name": "Idempotency-Key", "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": "Same key and same body within 24 h returns the first job; a different "
                   "body answers 422; a first request still being created answers 409.",
}


def _queue_for(req: dict[str, Any]) -> str:
    return "gpu" if req["device"] == "cuda" else "cpu"


def _split_check_errors(messages: Any) -> dict[str, Any]:
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


def validate_request(svc: Services, tenant: str, req: dict[str, Any]) -> KindSpec:
    """Everything the API can check before a job exists; aborts with 422 otherwise."""
    spec = kinds()[req["kind"]]
    if req["device"] == "cuda" and svc.settings.require_gpu_worker and not any(
        "gpu" in w.get("queues", []) for w in svc.jobs.workers()
    ):
        abort(422, "No GPU worker is running, so a device 'cuda' job would wait for ever. "
                   "Submit with device 'auto' or 'cpu', or start a worker on the gpu queue.",
              code="no_gpu_worker",
              errors={"device": ["No worker serves the gpu queue; use 'auto' or 'cpu'."]})
    try:
        req["options"] = spec.options_schema().load(req["options"])
    except ValidationError as e:
        abort(422, f"Invalid options for kind {spec.name!r}.", errors={"options": e.messages})

    def read_blob(blob_id: str) -> bytes:
        return svc.blobs.read(tenant, blob_id)

    try:
        ctx = submit_context(req, read_blob)
    except ValidationError as e:
        abort(422, "The model, data and loss do not fit together.", errors=e.messages)
    if spec.check is not None:
        try:
            spec.check(req["options"], ctx)
        except ValidationError as e:
            abort(422, f"Invalid options for kind {spec.name!r}.",
                  errors=_split_check_errors(e.messages))
    return spec


def _rate_limit(svc: Services, tenant: str) -> None:
    """Fixed one-minute window per tenant (LANDSCOPE_SUBMIT_RATE_PER_MIN; 0: off)."""
    limit = svc.settings.submit_rate_per_min
    if limit <= 0:
        return
    window = int(time.time() // 60)
    key = f"ls:rate:{tenant}:{window}"
    pipe = svc.redis.pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    count = int(pipe.execute()[0])
    if count > limit:
        retry = max(1, int(60 - time.time() % 60))
        abort(429, f"More than {limit} submissions in this minute for this API key; retry in "
                   f"{retry} s.", code="rate_limited", headers={"Retry-After": str(retry)})


@blp.route("")
class Jobs(MethodView):
    @blp.arguments(JobListQuerySchema, location="query")
    @blp.response(200, JobListSchema)
    @blp.doc(parameters=[{
        "in": "query", "name": "metadata.<key>", "required": False, "schema": {"type": "string"},
        "description": "Filter on a metadata pair, e.g. metadata.run=abc (repeat for more).",
    }])
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List jobs, newest first, with cursor pagination."""
        meta = {k[len("metadata."):]: v for k, v in request.args.items()
                if k.startswith("metadata.") and len(k) > len("metadata.")}
        known = ("status", "kind", "limit", "cursor")
        unknown = [k for k in request.args if k not in known and not k.startswith("metadata.")]
        if unknown:
            abort(422, "Unknown query parameters.",
                  errors={k: ["Unknown field; filter on metadata with metadata.<key>=<value>."]
                          for k in unknown})
        cursor = None
        if args.get("cursor"):
            try:
                score, _, job_id = base64.urlsafe_b64decode(args["cursor"].encode()).decode() \
                    .partition(":")
                cursor = (int(score), job_id)
            except (ValueError, binascii.Error, UnicodeDecodeError):
                abort(422, "Invalid cursor.", errors={"cursor": ["Use next_cursor as returned."]})
        items, last = services().jobs.list(
            tenant=g.tenant, status=args.get("status"), kind=args.get("kind"),
            metadata=meta or None, limit=args["limit"], cursor=cursor,
        )
        next_cursor = None
        if last is not None and len(items) == args["limit"]:
            next_cursor = base64.urlsafe_b64encode(f"{last[0]}:{last[1]}".encode()).decode()
        return {"items": items, "next_cursor": next_cursor}

    @blp.arguments(JobRequestSchema)
    @blp.response(202, JobSchema)
    @blp.doc(parameters=[IDEMPOTENCY_HEADER])
    def post(self, req: dict[str, Any]) -> Any:
        """Submit a job. Answers 202 at once; poll the job for progress and result."""
        svc = services()
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 255:
            abort(400, "Idempotency-Key must have 1 to 255 characters.",
                  errors={"Idempotency-Key": ["Must have 1 to 255 characters."]})
        _rate_limit(svc, g.tenant)
        validate_request(svc, g.tenant, req)
        queue = _queue_for(req)
        metadata = req.pop("metadata")
        try:
            job, created = svc.jobs.create(
                tenant=g.tenant, kind=req["kind"], request=req, metadata=metadata,
                queue=queue, idempotency_key=key,
            )
        except IdempotencyConflict:
            abort(422, "This Idempotency-Key was used with a different request; use a new key.",
                  code="idempotency_mismatch")
        except IdempotencyInProgress:
            abort(409, "A request with this Idempotency-Key is still being processed; retry.",
                  code="idempotency_in_progress", headers={"Retry-After": "1"})
        if not created:
            return job, 202, {"Idempotent-Replayed": "true"}
        try:
            send_job(svc, job, queue)
        except Exception as e:  # broker down: do not leave a job nobody will run
            log.exception("could not enqueue %s", job["id"])
            svc.jobs.fail(job["id"], "enqueue_failed", f"The queue is unavailable: {e}")
            abort(503, "The job queue is unavailable; retry shortly.", headers={"Retry-After": "5"})
        log.info("job submitted", extra={"job_id": job["id"], "tenant": g.tenant})
        return job


def _get_or_404(job_id: str) -> dict[str, Any]:
    svc = services()
    job = svc.jobs.get(job_id, tenant=g.tenant)
    if job is None:
        abort(404, f"No job {job_id!r} for this API key.")
    return job


@blp.route("/<string:job_id>")
class JobById(MethodView):
    @blp.arguments(JobGetQuerySchema, location="query")
    @blp.response(200, JobSchema)
    def get(self, args: dict[str, Any], job_id: str) -> dict[str, Any]:
        """Get a job: status, progress, result, error, artifacts.

        With ``wait=S`` the answer comes as soon as the job is finished, or after S seconds.
        """
        job = _get_or_404(job_id)
        if args["wait"] > 0 and job["status"] not in FINISHED:
            services().jobs.wait_finished(job_id, args["wait"])
            job = _get_or_404(job_id)
        if job["status"] == "running":  # a dead worker's job is noticed by any reader too
            svc = services()

            def send(jid: str, queue: str) -> None:
                send_job(svc, {"id": jid}, queue)

            if reap_one(svc.jobs, job_id, send, max_attempts=svc.settings.max_attempts):
                job = _get_or_404(job_id)
        return job


@blp.route("/<string:job_id>/cancel")
class CancelJob(MethodView):
    @blp.response(202, JobSchema)
    def post(self, job_id: str) -> dict[str, Any]:
        """Cancel: a queued job never runs; a running job stops at its next check."""
        svc = services()
        job = _get_or_404(job_id)
        if job["status"] in FINISHED:
            abort(409, f"Job {job_id} already {job['status']}; nothing to cancel.",
                  code="job_finished")
        status = svc.jobs.request_cancel(job_id)
        raw = svc.jobs.raw(job_id) or {}
        if status == "running" and raw.get("task_id"):
            # Revoke stops a redelivered copy of the task; the running one sees the flag.
            svc.celery.control.revoke(raw["task_id"])
        return _get_or_404(job_id)


@blp.route("/<string:job_id>/artifacts/<string:name>")
class ArtifactByName(MethodView):
    @blp.response(200, description="The artifact's bytes, with its media type.",
                  content_type="application/octet-stream")
    def get(self, job_id: str, name: str) -> Response:
        """Download an artifact (a plot, an array file) of a finished job."""
        job = _get_or_404(job_id)
        meta = next((a for a in job["artifacts"] if a["name"] == name), None)
        if meta is None:
            names = ", ".join(a["name"] for a in job["artifacts"]) or "none"
            abort(404, f"Job {job_id} has no artifact {name!r}; it has: {names}.")
        try:
            data = services().store.get(artifact_key(job_id, name))
        except KeyError:
            abort(404, f"Artifact {name!r} of job {job_id} has expired.")
        return Response(data, mimetype=meta["media_type"],
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "ETag": json.dumps(meta["sha256"])})
