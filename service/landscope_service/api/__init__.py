"""The HTTP API: ``create_app(config=None)``."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, request
from werkzeug.exceptions import HTTPException

from .. import __version__
from ..jobs.store import JobStore
from ..settings import Settings, load_settings
from ..storage.blobs import BlobService
from ..storage.store import make_store
from ..worker.celery_app import make_celery
from . import blobs, jobs, system
from .errors import abort, handle_http_exception, handle_unexpected
from .extensions import LandscopeApi, Services

__all__ = ["create_app"]

BLUEPRINTS = (system.blp, blobs.blp, jobs.blp)


def create_app(config: dict[str, Any] | None = None, *, settings: Settings | None = None) -> Flask:
    """Build the Flask app. ``settings`` default to the ``LANDSCOPE_*`` environment."""
    s = settings or load_settings()
    app = Flask("landscope_service")
    app.config.update(
        API_TITLE="landscope",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=s.max_body_bytes,
        API_SPEC_OPTIONS={
            "info": {"description": "A loss-landscape microscope served over HTTP."},
            "components": {"securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearerAuth": []}],
        },
    )
    if config:
        app.config.update(config)
    logging.basicConfig(level=s.log_level)
    client = redis.Redis.from_url(s.redis_url)
    store = make_store(s.storage, data_dir=s.data_dir, client=client)
    app.extensions["landscope"] = Services(
        settings=s,
        redis=client,
        jobs=JobStore(client, result_ttl_s=s.result_ttl_s,
                      idempotency_ttl_s=s.idempotency_ttl_s, lease_s=s.lease_s),
        blobs=BlobService(client, store),
        store=store,
        celery=make_celery(s),
    )
    api = LandscopeApi(app)
    app.extensions["landscope_api"] = api
    for blp in BLUEPRINTS:
        api.register_blueprint(blp)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)

    @app.before_request
    def _limit_json() -> None:
        if (request.method == "POST" and request.path == "/v1/jobs"
                and (request.content_length or 0) > s.max_json_bytes):
            abort(413, f"The job request is larger than {s.max_json_bytes} bytes; upload large "
                       "data as a blob and refer to it with data.blob.")

    return app
