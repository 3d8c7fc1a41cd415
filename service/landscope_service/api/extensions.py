"""Objects the views share, created once per app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from flask import current_app
from flask_smorest import Api

from ..jobs.store import JobStore
from ..settings import Settings
from ..storage.blobs import BlobService
from ..storage.store import ObjectStore
from .errors import PROBLEM_MEDIA_TYPE, ProblemSchema


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


def services() -> Services:
    return current_app.extensions["landscope"]  # type: ignore[no-any-return]


def current_api() -> LandscopeApi:
    return current_app.extensions["landscope_api"]  # type: ignore[no-any-return]


def send_job(svc: Services, job: dict[str, Any], queue: str) -> str:
    result = svc.celery.send_task("landscope.run_job", args=[job["id"]], queue=queue)
    svc.jobs.set_task_id(job["id"], result.id)
    return str(result.id)
