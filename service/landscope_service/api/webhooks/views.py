"""Webhook secrets (``/v1/webhooks/secret``) and a job's delivery log
(``/v1/jobs/{id}/deliveries``). Signing and delivery: :mod:`...jobs.webhooks`,
:mod:`...worker.webhooks`."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from ...jobs.store import iso
from ...jobs.webhooks import Deliveries, WebhookSecrets
from ..auth import require_tenant
from ..errors import abort
from ..extensions import services

blp = Blueprint("webhooks", __name__, url_prefix="/v1",
                description="Signed webhooks: the tenant's secret and each job's deliveries.")
blp.before_request(require_tenant)


class SecretSchema(Schema):
    secret = fields.String(metadata={"description": "whsec_<base64 key>: verify webhooks with "
                                                    "it (landscope.webhooks.verify)."})


class RotatedSecretSchema(SecretSchema):
    previous_valid_until = fields.String(metadata={
        "description": "Until then deliveries are signed with the previous secret too."})


class AttemptSchema(Schema):
    at = fields.String()
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_s = fields.Float()
    next_attempt_at = fields.String(metadata={"description": "When it is retried."})


class DeliverySchema(Schema):
    id = fields.String(metadata={"description": "The webhook-id header, the same on retries."})
    type = fields.String()
    url = fields.String()
    status = fields.String(metadata={"description": "pending, delivered or failed (retries "
                                                    "ran out)."})
    created_at = fields.String()
    attempts = fields.List(fields.Nested(AttemptSchema))


class DeliveryListSchema(Schema):
    items = fields.List(fields.Nested(DeliverySchema))


def _secrets() -> WebhookSecrets:
    svc = services()
    return WebhookSecrets(svc.redis, grace_s=svc.settings.webhook_secret_grace_s)


@blp.route("/webhooks/secret")
class Secret(MethodView):
    @blp.response(200, SecretSchema)
    def get(self) -> dict[str, Any]:
        """The tenant's webhook signing secret (made on first read)."""
        return {"secret": _secrets().current(g.tenant)}


@blp.route("/webhooks/secret/rotate")
class RotateSecret(MethodView):
    @blp.response(200, RotatedSecretSchema)
    def post(self) -> dict[str, Any]:
        """A new secret; the previous one stays valid for LANDSCOPE_WEBHOOK_SECRET_GRACE_S."""
        out = _secrets().rotate(g.tenant)
        return {"secret": out["secret"], "previous_valid_until": iso(out["previous_valid_until"])}


@blp.route("/jobs/<string:job_id>/deliveries")
class JobDeliveries(MethodView):
    @blp.response(200, DeliveryListSchema)
    def get(self, job_id: str) -> dict[str, Any]:
        """The job's webhook deliveries, oldest first, with every attempt."""
        svc = services()
        if svc.jobs.get(job_id, tenant=g.tenant) is None:
            abort(404, f"No job {job_id!r} for this API key.")
        items = Deliveries(svc.redis, ttl_s=svc.settings.result_ttl_s).for_job(job_id)
        for item in items:
            item["created_at"] = iso(item["created_at"])
            for a in item["attempts"]:
                a["at"] = iso(a["at"])
                if "next_attempt_at" in a:
                    a["next_attempt_at"] = iso(a["next_attempt_at"])
        return {"items": items}
