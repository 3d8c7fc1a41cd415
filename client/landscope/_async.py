"""``landscope.AsyncClient``: the SDK for asyncio programs (optional extra ``async``).

It has the sync client's resources (``jobs``, ``blobs``, ``webhooks``) as coroutines and
returns the same typed objects (:class:`~landscope.Job`, the kinds' result classes); it
sends with ``httpx`` (``pip install 'landscope[async]'``), imported when a client is made,
so the sync client keeps ``requests`` and ``import landscope`` needs neither extra.
Retries follow the same :class:`~landscope.RetryPolicy` (connection errors, timeouts, 408,
429, 5xx, 409 ``idempotency_in_progress``; ``Retry-After`` honoured up to its cap; one
idempotency key per submit across retries).

Example:
    >>> async with landscope.AsyncClient() as client:  # doctest: +SKIP
    ...     job = await client.jobs.submit(request)
    ...     result = await client.jobs.result(job)
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload
from urllib.parse import urlsplit

from landscope._events import JobEvent, page_events, page_params, parse_sse, stream_headers
from landscope._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    InvalidResponseError,
    JobFailedError,
    LandscopeError,
    RateLimitError,
    WaitTimeout,
    status_error_class,
)
from landscope._http import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after, path_segment
from landscope._version import __version__
from landscope.spec import JobRequest, ModelSpec
from landscope.types import Blob, Job, JobStatus, Page

if TYPE_CHECKING:
    import httpx

__all__ = ["AsyncBlobs", "AsyncClient", "AsyncJobs", "AsyncWebhooks"]

R = TypeVar("R")
JobRef = str | Job
URL_ENV, API_KEY_ENV = "LANDSCOPE_URL", "LANDSCOPE_API_KEY"


def _job_id(ref: JobRef) -> str:
    if isinstance(ref, Job):
        return ref.id
    if not isinstance(ref, str) or not ref:
        raise TypeError(f"Expected a job id or a Job, got {ref!r}.")
    return ref


def _error(response: httpx.Response) -> APIError:
    """The exception of an error answer (the problem document's fields)."""
    cls = status_error_class(response.status_code)
    code = title = None
    errors: Mapping[str, Any] = {}
    detail = ""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        code = body["code"] if isinstance(body.get("code"), str) else None
        title = body["title"] if isinstance(body.get("title"), str) else None
        detail = body["detail"] if isinstance(body.get("detail"), str) else (title or "")
        if isinstance(body.get("errors"), Mapping):
            errors = body["errors"]
    if not detail:
        detail = response.text.strip()[:200] if body is None else ""
        detail = detail or response.reason_phrase
    return cls(response.status_code, code, detail, errors, None, title=title)


class _AsyncTransport:
    def __init__(self, base_url: str, api_key: str, *, timeout: float, retry: RetryPolicy,
                 http_client: httpx.AsyncClient | None,
                 sleep: Callable[[float], Awaitable[None]], rng: random.Random) -> None:
        try:
            import httpx
        except ImportError as e:
            raise LandscopeError(
                "AsyncClient needs httpx: pip install 'landscope[async]'.") from e
        self._httpx = httpx
        self.base_url, self.timeout, self.retry = base_url, timeout, retry
        self._owns = http_client is None
        self.http = http_client if http_client is not None else httpx.AsyncClient(
            timeout=timeout, follow_redirects=False)
        self._sleep, self._rng = sleep, rng
        self.headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json",
                        "User-Agent": f"landscope-python-async/{__version__}"}

    async def aclose(self) -> None:
        if self._owns:
            await self.http.aclose()

    async def send(self, method: str, path: str, *, params: Mapping[str, str | int] | None = None,
                   json_body: Any = None, content: bytes | None = None,
                   headers: Mapping[str, str] | None = None, stream: bool = False,
                   no_retry_codes: tuple[str, ...] = ()) -> httpx.Response:
        """Send with retries; a < 400 answer (unread when ``stream``) or an APIError."""
        httpx = self._httpx
        merged = {**self.headers, **(headers or {})}
        retries = 0
        while True:
            try:
                request = self.http.build_request(method, self.base_url + path, params=params,
                                                  json=json_body, content=content,
                                                  headers=merged)
                response = await self.http.send(request, stream=stream)
            except httpx.TimeoutException as e:
                if retries < self.retry.max_retries:
                    await self._pause(retries, None)
                    retries += 1
                    continue
                raise APITimeoutError(f"{method} {path} timed out after {self.timeout:g} s "
                                      f"({retries + 1} attempt(s)).") from e
            except httpx.TransportError as e:
                if retries < self.retry.max_retries:
                    await self._pause(retries, None)
                    retries += 1
                    continue
                raise APIConnectionError(f"Could not reach {self.base_url} ({method} {path}, "
                                         f"{retries + 1} attempt(s)): {e}") from e
            if response.status_code < 400:
                return response
            if stream:
                await response.aread()
            error = _error(response)
            await response.aclose()
            retryable = (error.status in RETRYABLE_STATUSES or error.status >= 500
                         or (error.status == 409 and error.code == "idempotency_in_progress"))
            if error.code in no_retry_codes:
                retryable = False
            if retryable and retries < self.retry.max_retries:
                await self._pause(retries, parse_retry_after(response.headers.get("Retry-After")))
                retries += 1
                continue
            raise error

    async def _pause(self, retries: int, retry_after: float | None) -> None:
        if retry_after is not None:
            delay = min(retry_after, self.retry.max_retry_after)
        else:
            delay = self.retry.backoff(retries, self._rng.random())
        await self._sleep(delay)

    async def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        return self.json_of(await self.send("GET", path, params=params))

    @staticmethod
    def json_of(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as e:
            raise InvalidResponseError(
                f"Expected JSON from {response.request.method} {response.request.url}, got "
                f"{response.headers.get('Content-Type', 'no content type')}.") from e


class AsyncBlobs:
    """Files (``client.blobs``): upload and inspect."""

    def __init__(self, transport: _AsyncTransport) -> None:
        self._t = transport

    async def upload(self, data: bytes | str | os.PathLike[str]) -> Blob:
        """Upload bytes or a file in one request; returns the content-addressed blob."""
        content = data if isinstance(data, bytes) else Path(data).read_bytes()
        response = await self._t.send("POST", "/v1/blobs", content=content,
                                      headers={"Content-Type": "application/octet-stream"})
        return Blob.from_json(self._t.json_of(response))

    async def get(self, blob_id: str | Blob) -> Blob:
        ref = blob_id.id if isinstance(blob_id, Blob) else blob_id
        return Blob.from_json(await self._t.get_json(f"/v1/blobs/{path_segment(ref)}"))


class AsyncWebhooks:
    """The webhook secret and a job's deliveries (``client.webhooks``)."""

    def __init__(self, transport: _AsyncTransport) -> None:
        self._t = transport

    async def secret(self) -> str:
        body = await self._t.get_json("/v1/webhooks/secret")
        if not isinstance(body, dict) or not isinstance(body.get("secret"), str):
            raise InvalidResponseError(f"Expected a secret, got {body!r}.")
        return str(body["secret"])

    async def rotate_secret(self) -> str:
        body = self._t.json_of(await self._t.send("POST", "/v1/webhooks/secret/rotate"))
        if not isinstance(body, dict) or not isinstance(body.get("secret"), str):
            raise InvalidResponseError(f"Expected a secret, got {body!r}.")
        return str(body["secret"])

    async def deliveries(self, job: JobRef) -> list[dict[str, Any]]:
        body = await self._t.get_json(f"/v1/jobs/{path_segment(_job_id(job))}/deliveries")
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise InvalidResponseError(f"Expected a delivery list, got {body!r}.")
        return [dict(x) for x in body["items"] if isinstance(x, dict)]


class AsyncJobs:
    """Jobs (``client.jobs``): the sync :class:`~landscope.Jobs` as coroutines."""

    def __init__(self, transport: _AsyncTransport, blobs: AsyncBlobs, *,
                 sleep: Callable[[float], Awaitable[None]], clock: Callable[[], float]) -> None:
        self._t, self._blobs, self._sleep, self._clock = transport, blobs, sleep, clock

    async def submit(self, request: Mapping[str, Any] | JobRequest, *,
                     idempotency_key: str | None = None) -> Job:
        """Submit a job; one Idempotency-Key for every attempt."""
        if isinstance(request, JobRequest) and isinstance(request.model, ModelSpec):
            await self._blobs.upload(request.model.weights)
        body = request.to_json() if isinstance(request, JobRequest) else dict(request)
        key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
        if not key or len(key) > 255:
            raise ValueError(f"idempotency_key must have 1 to 255 characters, got {len(key)}.")
        response = await self._t.send("POST", "/v1/jobs", json_body=body,
                                      headers={"Idempotency-Key": key})
        return Job.from_json(self._t.json_of(response))

    async def get(self, job: JobRef, *, wait: float = 0.0) -> Job:
        """The job's current state (``wait``: long poll up to 30 s for it to finish)."""
        params: dict[str, str | int] | None = None
        if wait > 0:
            params = {"wait": f"{min(wait, 30.0):.3f}"}
        response = await self._t.send(
            "GET", f"/v1/jobs/{path_segment(_job_id(job))}", params=params,
            no_retry_codes=("too_many_waits",) if wait > 0 else ())
        return Job.from_json(self._t.json_of(response))

    async def list_page(self, *, status: JobStatus | None = None, kind: str | None = None,
                        metadata: Mapping[str, str] | None = None, limit: int | None = None,
                        cursor: str | None = None) -> Page[Job]:
        """One page of jobs, newest first."""
        params: dict[str, str | int] = {}
        for name, value in (("status", status), ("kind", kind), ("limit", limit),
                            ("cursor", cursor)):
            if value is not None:
                params[name] = value
        for key, value in (metadata or {}).items():
            params[f"metadata.{key}"] = value
        body = await self._t.get_json("/v1/jobs", params=params)
        if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
            raise InvalidResponseError(f"Expected {{'items': [...]}}, got {body!r:.200}.")
        nxt = body.get("next_cursor")
        if nxt is not None and not isinstance(nxt, str):
            raise InvalidResponseError(f"next_cursor should be a string, got {nxt!r}.")
        return Page(items=tuple(Job.from_json(i) for i in body["items"]),
                    next_cursor=nxt or None)

    async def list(self, *, status: JobStatus | None = None, kind: str | None = None,
                   metadata: Mapping[str, str] | None = None,
                   limit: int | None = None) -> AsyncIterator[Job]:
        """Every matching job, newest first, a page at a time."""
        cursor: str | None = None
        while True:
            page = await self.list_page(status=status, kind=kind, metadata=metadata,
                                        limit=limit, cursor=cursor)
            for job in page.items:
                yield job
            if page.next_cursor is None:
                return
            if page.next_cursor == cursor:
                raise InvalidResponseError(f"The server returned the cursor {cursor!r} twice.")
            cursor = page.next_cursor

    async def cancel(self, job: JobRef) -> Job:
        """Cancel a job (a running one turns cancelled at its next check)."""
        response = await self._t.send("POST", f"/v1/jobs/{path_segment(_job_id(job))}/cancel")
        return Job.from_json(self._t.json_of(response))

    async def wait(self, job: JobRef, *, timeout: float | None = None,
                   poll_interval: float = 0.5, max_poll_interval: float = 5.0) -> Job:
        """Wait for a final status with long polls (plain polls when the tenant's wait
        slots are taken); a failed or cancelled job is returned, not raised.

        Raises:
            WaitTimeout: the deadline passed first.
        """
        if poll_interval <= 0 or max_poll_interval < poll_interval:
            raise ValueError("Expected 0 < poll_interval <= max_poll_interval.")
        if isinstance(job, Job) and job.is_finished:
            return job
        job_id = _job_id(job)
        deadline = None if timeout is None else self._clock() + timeout
        interval, long_poll = poll_interval, True
        while True:
            started = self._clock()
            hold = interval if deadline is None else max(0.0, min(interval, deadline - started))
            try:
                current = await self.get(job_id, wait=hold if long_poll else 0.0)
            except RateLimitError as e:
                if e.code != "too_many_waits":
                    raise
                long_poll = False
                current = await self.get(job_id)
            if current.is_finished:
                return current
            delay = interval - (self._clock() - started)
            if deadline is not None and timeout is not None:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise WaitTimeout(current, timeout)
                delay = min(delay, remaining)
            if delay > 0:
                await self._sleep(delay)
            interval = min(interval * 1.5, max_poll_interval)

    @overload
    async def result(self, job: JobRef, *, timeout: float | None = ...) -> Any: ...

    @overload
    async def result(self, job: JobRef, result_type: type[R], *,
                     timeout: float | None = ...) -> R: ...

    async def result(self, job: JobRef, result_type: type[Any] | None = None, *,
                     timeout: float | None = None) -> Any:
        """Wait and return the kind's typed result.

        Raises:
            JobFailedError: the job failed, was cancelled or expired.
        """
        finished = await self.wait(job, timeout=timeout)
        if finished.status != "succeeded":
            raise JobFailedError(finished)
        return finished.typed_result() if result_type is None else \
            finished.typed_result(result_type)

    async def artifact(self, job: JobRef, name: str) -> bytes:
        """The content of one artifact."""
        path = f"/v1/jobs/{path_segment(_job_id(job))}/artifacts/{path_segment(name)}"
        return (await self._t.send("GET", path)).content

    async def events(self, job: JobRef, *, stream: bool = False,
                     after: str | None = None) -> AsyncIterator[JobEvent]:
        """The job's events; with ``stream`` live until its final event (SSE,
        reconnecting with ``Last-Event-ID``)."""
        path = f"/v1/jobs/{path_segment(_job_id(job))}/events"
        last = after
        if not stream:
            while True:
                page = await self._t.get_json(path, params=page_params(last))
                for ev in page_events(page):
                    last = ev.id
                    yield ev
                if not page.get("next_cursor"):
                    return
        while True:
            response = await self._t.send("GET", path, params={"stream": "true"},
                                          headers=stream_headers(last), stream=True)
            try:
                lines: list[str] = []
                async for line in response.aiter_lines():
                    lines.append(line)
                    if line != "":
                        continue
                    for msg in parse_sse(iter(lines)):
                        ev = JobEvent.from_json(json.loads(msg["data"]))
                        last = ev.id
                        yield ev
                        if ev.final:
                            return
                    lines = []
            finally:
                await response.aclose()


class AsyncClient:
    """The async SDK client; arguments as :class:`~landscope.Client`.

    Args:
        base_url: service URL (default ``$LANDSCOPE_URL``).
        api_key: API key (default ``$LANDSCOPE_API_KEY``).
        timeout: seconds per request.
        max_retries: retries after the first attempt.
        retry: the full retry policy (overrides ``max_retries``).
        http_client: an ``httpx.AsyncClient`` to send with (closed only if made here).
        sleep: the coroutine that sleeps between retries and polls (``asyncio.sleep``).
        clock: a monotonic clock of ``wait`` deadlines.
        rng: the random source of retry jitter.
    """

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 timeout: float = 30.0, max_retries: int = 3, retry: RetryPolicy | None = None,
                 http_client: httpx.AsyncClient | None = None,
                 sleep: Callable[[float], Awaitable[None]] | None = None,
                 clock: Callable[[], float] | None = None,
                 rng: random.Random | None = None) -> None:
        url = base_url if base_url is not None else os.environ.get(URL_ENV, "")
        if not url:
            raise LandscopeError(f"No service URL: pass base_url=... or set {URL_ENV}.")
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
        if not key:
            raise LandscopeError(f"No API key: pass api_key=... or set {API_KEY_ENV}.")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise LandscopeError(f"The service URL must be http(s)://host[:port], got {url!r}.")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}.")
        self.base_url = url.rstrip("/").removesuffix("/v1")
        do_sleep = sleep if sleep is not None else asyncio.sleep
        self._transport = _AsyncTransport(
            self.base_url, key, timeout=timeout,
            retry=retry if retry is not None else RetryPolicy(max_retries=max_retries),
            http_client=http_client, sleep=do_sleep, rng=rng or random.Random())
        self.blobs = AsyncBlobs(self._transport)
        self.jobs = AsyncJobs(self._transport, self.blobs, sleep=do_sleep,
                              clock=clock if clock is not None else time.monotonic)
        self.webhooks = AsyncWebhooks(self._transport)

    async def health(self) -> dict[str, Any]:
        body = await self._transport.get_json("/healthz")
        return dict(body) if isinstance(body, dict) else {"status": body}

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self.base_url!r})"
