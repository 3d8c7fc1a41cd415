"""``/v1/jobs``: submit, list, get, cancel, artifacts. Views never block on a task."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from ...jobs.cursors import decode_cursor, encode_cursor
from ...jobs.store import FINISHED
from ...storage.blobs import artifact_key
from ..auth import require_tenant
from ..errors import abort
from ..extensions import services
from .schemas import (
    JobGetQuerySchema,
    JobListQuerySchema,
    JobListSchema,
    JobRequestSchema,
    JobSchema,
)

blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs",
                description="Submit diagnostics, follow their progress, fetch results.")
blp.before_request(require_tenant)

# Schema instances made once: marshmallow copies every field per instance, a cost that
# was paid per request when the views named the classes.
JOB = JobSchema()
JOB_REQUEST = JobRequestSchema()

IDEMPOTENCY_HEADER = {
    "in": "header", "name": "Idempotency-Key", "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": "Same key and same body within 24 h returns the first job; a different "
                   "body answers 422; a first request still being created answers 409.",
}


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
        cursor = decode_cursor(args["cursor"]) if args.get("cursor") else None
        items, last = services().jobs.list(
            tenant=g.tenant, status=args.get("status"), kind=args.get("kind"),
            metadata=meta or None, limit=args["limit"], cursor=cursor,
        )
        next_cursor = None
        if last is not None and len(items) == args["limit"]:
            next_cursor = encode_cursor(last)
        return {"items": items, "next_cursor": next_cursor}

    @blp.arguments(JOB_REQUEST)
    @blp.response(202, JOB)
    @blp.doc(parameters=[IDEMPOTENCY_HEADER])
    def post(self, req: dict[str, Any]) -> Any:
        """Submit a job. Answers 202 at once; poll the job for progress and result."""
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 255:
            abort(400, "Idempotency-Key must have 1 to 255 characters.",
                  errors={"Idempotency-Key": ["Must have 1 to 255 characters."]})
        job, created = services().submissions.submit(g.tenant, req, key)
        if not created:
            return job, 202, {"Idempotent-Replayed": "true"}
        # A job just created is already in JobSchema's shape (the store renders it so, and
        # tests/unit/test_api_jobs_logic.py checks that dumping it changes nothing): it is
        # encoded as it is, without a second pass through the schema.
        resp = current_app.json.response(job)
        resp.status_code = 202
        return resp


def _get_or_404(job_id: str) -> dict[str, Any]:
    svc = services()
    job = svc.jobs.get(job_id, tenant=g.tenant)
    if job is None:
        abort(404, f"No job {job_id!r} for this API key.")
    return job


@blp.route("/<string:job_id>")
class JobById(MethodView):
    @blp.arguments(JobGetQuerySchema, location="query")
    @blp.response(200, JOB)
    def get(self, args: dict[str, Any], job_id: str) -> dict[str, Any]:
        """Get a job: status, progress, result, error, artifacts.

        With ``wait=S`` the answer comes as soon as the job is finished, or after S seconds.
        A tenant holds at most LANDSCOPE_MAX_WAITS_PER_TENANT waits at once (429 beyond).
        """
        job = _get_or_404(job_id)
        if args["wait"] > 0 and job["status"] not in FINISHED:
            svc = services()

            def finished() -> bool:
                status = svc.jobs.status(job_id)
                return status is None or status in FINISHED

            # One of the tenant's wait slots (429 beyond the cap); no thread is held.
            with svc.wait_slots.hold(g.tenant, args["wait"]):
                svc.waits.wait(job_id, args["wait"], finished)
            job = _get_or_404(job_id)
        if job["status"] == "running":  # a dead worker's job is noticed by any reader too
            svc = services()
            if svc.dispatcher.recover_if_lost(job_id, max_attempts=svc.settings.max_attempts):
                job = _get_or_404(job_id)
        return job


@blp.route("/<string:job_id>/cancel")
class CancelJob(MethodView):
    @blp.response(202, JOB)
    def post(self, job_id: str) -> dict[str, Any]:
        """Cancel: a queued job never runs; a running job stops at its next check."""
        job = _get_or_404(job_id)
        if job["status"] in FINISHED:
            abort(409, f"Job {job_id} already {job['status']}; nothing to cancel.",
                  code="job_finished")
        services().dispatcher.cancel(job_id)
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
