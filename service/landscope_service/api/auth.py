"""Bearer API keys; each key belongs to a tenant."""

from __future__ import annotations

from flask import g, request

from ..logs import tenant_var
from .errors import abort
from .extensions import services


def require_tenant() -> None:
    """``before_request`` of every /v1 blueprint: sets ``g.tenant``."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        abort(401, "Missing API key: send 'Authorization: Bearer <key>'.",
              headers={"WWW-Authenticate": 'Bearer realm="landscope"'})
    tenant = services().settings.tenant_for(key.strip())
    if tenant is None:
        abort(401, "Invalid API key.", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    g.tenant = tenant
    tenant_var.set(tenant)
