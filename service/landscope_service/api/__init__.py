"""The HTTP API: ``create_app(config=None)``."""

from __future__ import annotations

import inspect
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from .. import __version__
from ..jobs.dispatch import Dispatcher
from ..jobs.errors import JobError
from ..jobs.events import WEBHOOK_QUEUE
from ..jobs.limits import ActiveJobCaps, WaitSlots
from ..jobs.ratelimit import SubmitRateLimiter
from ..jobs.store import JobStore
from ..jobs.submit import Submissions
from ..logs import configure_logging
from ..metrics import RedisMetrics
from ..modelspec.schemas import polymorphic_openapi
from ..settings import Settings, load_settings
from ..storage.blobs import SWEEP_EVERY_S, BlobService
from ..storage.store import make_store
from ..worker.celery_app import make_celery
from . import blobs, events, jobs, system, uploads, webhooks
from .deadline import BodyDeadline
from .errors import (
    handle_http_exception,
    handle_job_error,
    handle_redis_down,
    handle_unexpected,
)
from .extensions import LandscopeApi, Services
from .httpmetrics import HttpMetricsBuffer
from .jsonprovider import FastJSONProvider
from .limits import install_body_limits
from .options import register_option_components
from .ui import blp as ui_blp
from .ui import root as ui_root
from .waits import JobWaits

__all__ = ["create_app"]

BLUEPRINTS = (system.blp, blobs.blp, uploads.blp, jobs.blp, events.blp, webhooks.blp)
REDIS_CONNECTIONS = 64  # per API process


log = logging.getLogger("landscope.api")


class _App(Flask):
    """Flask, asking whether a view or hook is a coroutine function once per function.

    Flask asks ``inspect.iscoroutinefunction`` on every call of every hook and view (a
    dozen times per request); the answer never changes for a function, so it is kept
    (keyed by the function under a bound method; at most ``_SYNC_CACHE_MAX`` of them).
    """

    _SYNC_CACHE_MAX = 4096

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain: dict[Any, bool] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        key = getattr(func, "__func__", func)
        try:
            plain = self._plain.get(key)
        except TypeError:  # an unhashable callable: ask every time
            return super().ensure_sync(func)
        if plain is None:
            plain = not inspect.iscoroutinefunction(func)
            if len(self._plain) < self._SYNC_CACHE_MAX:
                self._plain[key] = plain
        return func if plain else super().ensure_sync(func)


def create_app(
    config: dict[str, Any] | None = None,
    *,
    settings: Settings | None = None,
    clock: Callable[[], float] = time.time,
) -> Flask:
    """Build the Flask app. ``settings`` default to the ``LANDSCOPE_*`` environment.

    ``clock`` (UNIX seconds) drives the per-tenant limits, so tests can move time.
    """
    s = settings or load_settings()
    app = _App("landscope_service")
    app.json = FastJSONProvider(app)
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
    configure_logging(s.log_level)
    # A bounded pool that makes a request wait for a free connection (up to 5 s, then 503)
    # instead of failing: under gevent, hundreds of requests may want Redis at once.
    client = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
        s.redis_url, max_connections=REDIS_CONNECTIONS, timeout=5))
    metrics = RedisMetrics(client)
    http_metrics = HttpMetricsBuffer(
        metrics, interval_s=app.config.get("METRICS_FLUSH_S", 0.0 if app.testing else 1.0))
    store = make_store(s.storage, data_dir=s.data_dir, client=client)
    job_store = JobStore(client, result_ttl_s=s.result_ttl_s,
                         idempotency_ttl_s=s.idempotency_ttl_s, lease_s=s.lease_s,
                         metrics=metrics)
    blob_service = BlobService(client, store, ttl_s=s.blob_ttl_s,
                               tenant_cap_bytes=s.tenant_blob_bytes)
    celery = make_celery(s)
    dispatcher = Dispatcher(celery, job_store)
    job_store.events.sender = lambda delivery_id: celery.send_task(  # webhooks of API changes
        "landscope.deliver_webhook", args=[delivery_id], queue=WEBHOOK_QUEUE)
    app.extensions["landscope"] = Services(
        settings=s,
        redis=client,
        jobs=job_store,
        blobs=blob_service,
        store=store,
        celery=celery,
        dispatcher=dispatcher,
        submissions=Submissions(
            settings=s, jobs=job_store, blobs=blob_service,
            limiter=SubmitRateLimiter(client, s.submit_rate_per_min, clock=clock),
            dispatcher=dispatcher,
            caps=ActiveJobCaps(client, s.max_queued_per_tenant, s.max_running_per_tenant,
                               clock=clock),
        ),
        waits=JobWaits(client),
        http_metrics=http_metrics,
        wait_slots=WaitSlots(client, s.max_waits_per_tenant, clock=clock),
    )
    api = LandscopeApi(app)
    app.extensions["landscope_api"] = api
    for blp in BLUEPRINTS:
        api.register_blueprint(blp)
    app.register_blueprint(ui_blp)  # /ui pages (not part of the OpenAPI document)
    app.register_blueprint(ui_root)  # / leads to /ui/
    polymorphic_openapi(api.spec)  # Architecture and Layer as oneOf, keyed on "type"
    register_option_components(api.spec)  # each public kind's options, as components
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(JobError, handle_job_error)
    app.register_error_handler(redis.ConnectionError, handle_redis_down)
    app.register_error_handler(redis.TimeoutError, handle_redis_down)
    app.register_error_handler(Exception, handle_unexpected)

    @app.before_request
    def _start_clock() -> None:
        g.t0 = time.perf_counter()

    last_sweep = [-math.inf]

    @app.before_request
    def _sweep_expired_blobs() -> None:
        # At most once a period per process (and once over all processes, by a Redis key):
        # bytes of blobs that expired go even when nothing is uploaded. In the background,
        # so no request waits for it (inline in TESTING, so tests see it done).
        now = clock()
        if now - last_sweep[0] < SWEEP_EVERY_S or blob_service.ttl_s is None:
            return
        last_sweep[0] = now

        def sweep() -> None:
            try:
                blob_service.maybe_sweep()
            except Exception as e:  # Redis down: the next period tries again
                log.debug("blob sweep failed: %s", e)

        if app.config.get("TESTING"):
            sweep()
        else:
            threading.Thread(target=sweep, name="landscope-blob-sweep", daemon=True).start()

    @app.after_request
    def _observe(resp: Response) -> Response:
        t0 = g.get("t0")
        if t0 is not None and request.path != "/metrics":
            endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
            http_metrics.record(request.method, endpoint, resp.status_code,
                                time.perf_counter() - t0)
        return resp

    install_body_limits(app)  # 413 for any body over its limit (chunked too), JSON depth

    app.wsgi_app = BodyDeadline(app.wsgi_app, s.body_timeout_s)  # type: ignore[method-assign]
    return app
