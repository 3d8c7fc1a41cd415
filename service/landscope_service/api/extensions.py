"""Objects the views share, created once per app."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from flask import current_app
from flask_smorest import Api

from ..jobs.dispatch import Dispatcher
from ..jobs.limits import WaitSlots
from ..jobs.store import JobStore
from ..jobs.submit import Submissions
from ..settings import Settings
from ..storage.blobs import BlobService
from ..storage.store import ObjectStore
from .errors import PROBLEM_MEDIA_TYPE, ProblemSchema
from .httpmetrics import HttpMetricsBuffer
from .waits import JobWaits


class LandscopeApi(Api):  # type: ignore[misc]
    """flask-smorest's Api with problem+json error responses in the spec."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        self.DEFAULT_RESPONSE_CONTENT_TYPE = PROBLEM_MEDIA_TYPE
        try:
            super()._register_responses()
        finally:
            self.DEFAULT_RESPONSE_CONTENT_TYPE = "application/json"


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    blobs: BlobService
    store: ObjectStore
    celery: Celery
    dispatcher: Dispatcher
    submissions: Submissions
    waits: JobWaits
    wait_slots: WaitSlots
    http_metrics: HttpMetricsBuffer


def services() -> Services:
    return current_app.extensions["landscope"]  # type: ignore[no-any-return]


def current_api() -> LandscopeApi:
    return current_app.extensions["landscope_api"]  # type: ignore[no-any-return]

