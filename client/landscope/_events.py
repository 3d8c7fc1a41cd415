"""A job's events (``client.jobs.events``), deliveries and the webhook secret
(``client.webhooks``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from landscope._exceptions import InvalidResponseError
from landscope._http import Transport, path_segment

__all__ = ["FINAL_EVENT_TYPES", "JobEvent", "Webhooks", "iter_events", "parse_sse"]

FINAL_EVENT_TYPES = ("job.succeeded", "job.failed", "job.cancelled", "job.expired")


@dataclass(frozen=True)
class JobEvent:
    """One event of a job's history.

    Attributes:
        id: ordered id (``<ms>-<seq>``); resume after it.
        type: ``job.queued``, ``job.started``, ``job.progress``, ``job.requeued``,
            ``job.succeeded``, ``job.failed``, ``job.cancelled`` or ``job.expired``.
        timestamp: RFC 3339 UTC.
        data: the event's fields (``status``, ``attempt``, ``progress``, ``error``).
    """

    id: str
    type: str
    timestamp: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        """The job ended with this event."""
        return self.type in FINAL_EVENT_TYPES

    @classmethod
    def from_json(cls, body: Any) -> JobEvent:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) \
                or not isinstance(body.get("type"), str):
            raise InvalidResponseError(f"Expected an event object, got {body!r}.")
        data = body.get("data")
        return cls(id=body["id"], type=body["type"], timestamp=str(body.get("timestamp", "")),
                   data=dict(data) if isinstance(data, dict) else {})


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-Sent Events messages (``{"id", "event", "data"}``) from text lines."""
    msg: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                msg["data"] = "\n".join(data)
                yield msg
            msg, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name in ("id", "event"):
            msg[name] = value
    if data:
        msg["data"] = "\n".join(data)
        yield msg


def page_params(after: str | None) -> dict[str, str | int]:
    """Query of one page of a job's events after the event id ``after``."""
    return {"limit": 1000, **({"after": after} if after else {})}


def page_events(page: Any) -> list[JobEvent]:
    """The events of one page (``{"items", "next_cursor"}``) as typed events.

    Raises:
        InvalidResponseError: if ``page`` is not an event page.
    """
    if not isinstance(page, dict) or not isinstance(page.get("items"), list):
        raise InvalidResponseError(f"Expected an event page, got {page!r}.")
    return [JobEvent.from_json(item) for item in page["items"]]


def stream_headers(last: str | None) -> dict[str, str]:
    """Headers of an SSE request resuming after the event id ``last``."""
    return {"Accept": "text/event-stream", **({"Last-Event-ID": last} if last else {})}


def iter_events(transport: Transport, job_id: str, *, stream: bool,
                after: str | None = None) -> Iterator[JobEvent]:
    """Every event after ``after``; with ``stream`` also each new one until the job ends
    (reconnecting with ``Last-Event-ID`` when the service closes a stream early)."""
    path = f"/v1/jobs/{path_segment(job_id)}/events"
    last = after
    if not stream:
        while True:
            page = transport.get_json(path, params=page_params(last))
            for ev in page_events(page):
                last = ev.id
                yield ev
            if not page.get("next_cursor"):
                return
    while True:
        response = transport.request("GET", path, params={"stream": "true"},
                                     headers=stream_headers(last), stream=True)
        try:
            lines = response.iter_lines(decode_unicode=True)
            for msg in parse_sse(line for line in lines if isinstance(line, str)):
                ev = JobEvent.from_json(json.loads(msg["data"]))
                last = ev.id
                yield ev
                if ev.final:
                    return
        finally:
            response.close()
        # the service ended the stream (its time cap) before the job ended: reconnect


class Webhooks:
    """The tenant's webhook signing secret (``client.webhooks``)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def secret(self) -> str:
        """The ``whsec_...`` secret that signs this tenant's webhooks."""
        body = self._transport.get_json("/v1/webhooks/secret")
        if not isinstance(body, dict) or not isinstance(body.get("secret"), str):
            raise InvalidResponseError(f"Expected a secret, got {body!r}.")
        return str(body["secret"])

    def rotate_secret(self) -> str:
        """A new secret; the previous one keeps signing for the service's grace period."""
        response = self._transport.request("POST", "/v1/webhooks/secret/rotate")
        body = self._transport.json_of(response)
        if not isinstance(body, dict) or not isinstance(body.get("secret"), str):
            raise InvalidResponseError(f"Expected a secret, got {body!r}.")
        return str(body["secret"])

    def deliveries(self, job_id: str) -> list[dict[str, Any]]:
        """A job's webhook deliveries with every attempt, oldest first."""
        body = self._transport.get_json(f"/v1/jobs/{path_segment(job_id)}/deliveries")
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise InvalidResponseError(f"Expected a delivery list, got {body!r}.")
        return [dict(x) for x in body["items"] if isinstance(x, dict)]
