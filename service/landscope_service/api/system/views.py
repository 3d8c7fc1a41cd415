"""Liveness, readiness and the docs page."""

from __future__ import annotations

import html
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from ..extensions import current_api, services

blp = Blueprint("system", __name__, description="Health, readiness and documentation.")
NO_AUTH: dict[str, Any] = {"security": []}  # these answer without an API key


class HealthSchema(Schema):
    status = fields.String()


class WorkerSchema(Schema):
    name = fields.String()
    queues = fields.List(fields.String())
    last_seen = fields.String()
    concurrency = fields.Integer()
    devices = fields.List(fields.String())


class ReadySchema(Schema):
    status = fields.String(metadata={"description": "ready or not_ready"})
    redis = fields.Boolean()
    workers = fields.List(fields.Nested(WorkerSchema))
    queues = fields.Dict(keys=fields.String(), values=fields.Integer(),
                         metadata={"description": "Messages waiting per queue."})


@blp.route("/healthz")
class Health(MethodView):
    @blp.doc(**NO_AUTH)
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, str]:
        """The API process is up."""
        return {"status": "ok"}


@blp.route("/readyz")
class Ready(MethodView):
    @blp.doc(**NO_AUTH)
    @blp.response(200, ReadySchema)
    @blp.alt_response(503, schema=ReadySchema, description="Redis or every worker is down.")
    def get(self) -> Any:
        """Ready when Redis answers and at least one worker sent a heartbeat."""
        svc = services()
        try:
            svc.redis.ping()
            workers = svc.jobs.workers()
            queues = {q: int(svc.redis.llen(q)) for q in ("cpu", "gpu")}  # type: ignore[arg-type]
            ok = True
        except Exception:
            workers, queues, ok = [], {}, False
        body = {"status": "ready" if ok and workers else "not_ready", "redis": ok,
                "workers": workers, "queues": queues}
        return body, 200 if ok and workers else 503


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.doc(**NO_AUTH)
    @blp.response(200, description="Prometheus text exposition format.",
                  content_type="text/plain")
    def get(self) -> Response:
        """Prometheus metrics of the whole deployment (kept in Redis)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from ...metrics import RedisMetrics, registry_for

        svc = services()
        svc.http_metrics.flush()  # this process's requests so far
        body = generate_latest(registry_for(RedisMetrics(svc.redis)))
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@blp.route("/docs")
class Docs(MethodView):
    @blp.doc(**NO_AUTH)
    @blp.doc(summary="HTML reference of the API (offline, generated from the OpenAPI spec).")
    @blp.response(200, description="HTML page", content_type="text/html")
    def get(self) -> Response:
        """A self-contained HTML page of every endpoint (no CDN needed)."""
        spec = current_api().spec.to_dict()
        parts = [f"<h1>{html.escape(spec['info']['title'])} {html.escape(spec['info']['version'])}"
                 "</h1><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a>.</p>"]
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                if method == "parameters":
                    continue
                parts.append(
                    f"<h3><code>{method.upper()} {html.escape(path)}</code></h3>"
                    f"<p>{html.escape(op.get('summary', ''))}</p>"
                    f"<p>{html.escape(op.get('description', ''))}</p>"
                    "<p>Responses: " + ", ".join(html.escape(str(c)) for c in op["responses"])
                    + "</p>"
                )
        page = ("<!doctype html><html><head><meta charset='utf-8'><title>landscope API</title>"
                "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}</style>"
                "</head><body>" + "".join(parts) + "</body></html>")
        return Response(page, mimetype="text/html")
