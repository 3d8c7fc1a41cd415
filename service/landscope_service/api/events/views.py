"""``GET /v1/jobs/{id}/events``: a job's ordered history, as pages or Server-Sent Events.

The stream (``?stream=true``, ``text/event-stream``) sends every event after
``Last-Event-ID`` (or ``after``) and then each new one as it is appended, reading the job's
Redis stream with a blocking read on a connection of its own (not one of the API's pool).
It ends after the job's final event, or after LANDSCOPE_EVENTS_STREAM_MAX_S: a response
never holds a worker (a greenlet under gevent, a thread under gthread) for ever, and the
client reconnects with ``Last-Event-ID``. Streams count against the tenant's wait slots
(LANDSCOPE_MAX_WAITS_PER_TENANT, 429 beyond).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import redis
from flask import Response, g, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ...jobs.events import decode_stream_rows, event_key
from ...jobs.store import FINISHED
from ...strict import StrictSchema
from ..auth import require_tenant
from ..errors import abort
from ..extensions import services

blp = Blueprint("events", __name__, url_prefix="/v1/jobs",
                description="A job's event history, paginated or live (Server-Sent Events).")
blp.before_request(require_tenant)

FINAL_TYPES = ("job.succeeded", "job.failed", "job.cancelled", "job.expired")
KEEPALIVE_S = 15.0
_EVENT_ID = r"^\d+-\d+$"


class EventsQuerySchema(StrictSchema):
    after = fields.String(
        load_default=None, validate=validate.Regexp(_EVENT_ID, error="Expected an event id "
                                                                      "such as 1700000000000-0."),
        metadata={"description": "Only events after this id (the next_cursor of a page, or "
                                 "an event's id)."})
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    stream = fields.Boolean(
        load_default=False,
        metadata={"description": "Answer text/event-stream: the events so far, then each new "
                                 "one live; resumes after the Last-Event-ID header."})


class EventSchema(Schema):
    id = fields.String(metadata={"description": "Ordered id (<ms>-<seq>)."})
    type = fields.String(metadata={"description": "job.queued, job.started, job.progress, "
                                                  "job.requeued, job.succeeded, job.failed, "
                                                  "job.cancelled or job.expired."})
    timestamp = fields.String()
    data = fields.Dict()


class EventPageSchema(Schema):
    items = fields.List(fields.Nested(EventSchema))
    next_cursor = fields.String(allow_none=True, metadata={
        "description": "Pass as after= for the next page (null: none so far)."})


@blp.route("/<string:job_id>/events")
class JobEvents(MethodView):
    @blp.arguments(EventsQuerySchema, location="query")
    @blp.response(200, EventPageSchema)
    @blp.alt_response(200, description="With stream=true: text/event-stream, one event per "
                                       "message (id, event, data).",
                      content_type="text/event-stream", success=True)
    def get(self, args: dict[str, Any], job_id: str) -> Any:
        """A job's events, oldest first: state changes, attempts and progress (<= 1/s)."""
        svc = services()
        if svc.jobs.get(job_id, tenant=g.tenant) is None:
            abort(404, f"No job {job_id!r} for this API key.")
        after = args["after"]
        if args["stream"]:
            last = request.headers.get("Last-Event-ID")
            if last is not None:
                if not _valid_id(last):
                    abort(400, "Last-Event-ID must be an event id such as 1700000000000-0.",
                          errors={"Last-Event-ID": ["Not an event id."]})
                after = last
            return _stream(job_id, after)
        items = svc.jobs.events.read(job_id, after=after, limit=args["limit"])
        nxt = items[-1]["id"] if len(items) == args["limit"] else None
        return {"items": items, "next_cursor": nxt}


def _valid_id(value: str) -> bool:
    import re

    return re.fullmatch(_EVENT_ID, value) is not None


def _stream(job_id: str, after: str | None) -> Response:
    svc = services()
    max_s = svc.settings.events_stream_max_s
    slot = svc.wait_slots.hold(g.tenant, max_s)
    slot.__enter__()  # 429 when the tenant holds too many waits and streams

    def generate() -> Iterator[str]:
        conn = redis.Redis.from_url(svc.settings.redis_url, socket_timeout=KEEPALIVE_S + 10)
        try:
            yield "retry: 1000\n\n"
            last = after or "0-0"
            deadline = time.monotonic() + max_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                block_ms = int(min(remaining, KEEPALIVE_S) * 1000) or 1
                rows = conn.xread({event_key(job_id): last}, count=100, block=block_ms)
                events = decode_stream_rows(rows)
                if not events:
                    status = svc.jobs.status(job_id)
                    if status is None or status in FINISHED:
                        return  # expired, or finished with its last event already sent
                    yield ": keep-alive\n\n"
                    continue
                for ev in events:
                    last = ev["id"]
                    yield (f"id: {ev['id']}\nevent: {ev['type']}\n"
                           f"data: {json.dumps(ev, separators=(',', ':'))}\n\n")
                    if ev["type"] in FINAL_TYPES:
                        return
        finally:
            conn.close()
            slot.__exit__(None, None, None)

    return Response(stream_with_context(generate()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
