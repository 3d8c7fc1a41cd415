"""``client.jobs``: submit, inspect, list, wait for and cancel jobs; fetch artifacts."""

from __future__ import annotations

import builtins
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar, assert_never, overload

import requests

from landscope._blobs import Blobs
from landscope._events import JobEvent, iter_events
from landscope._exceptions import (
    APIConnectionError,
    InvalidResponseError,
    JobFailedError,
    RateLimitError,
    WaitTimeout,
)
from landscope._http import Transport, path_segment
from landscope._progress import ProgressCallback, make_reporter
from landscope.spec import JobRequest, ModelSpec
from landscope.types import Job, JobStatus, Page

__all__ = ["Jobs"]

R = TypeVar("R")

JobRef = str | Job
"""A job id (``job_...``) or a :class:`~landscope.Job`."""


def _job_id(ref: JobRef) -> str:
    if isinstance(ref, Job):
        return ref.id
    if not isinstance(ref, str) or not ref:
        raise TypeError(f"Expected a job id or a Job, got {ref!r}.")
    return ref


def _safe_artifact_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise InvalidResponseError(f"Refusing to write an artifact with the unsafe name {name!r}.")
    return name


class Jobs:
    """The job resource (``client.jobs``).

    Args:
        transport: the client's transport.
        sleep: the sleep function used between polls.
        clock: a monotonic clock for ``wait`` deadlines.
        blobs: the client's blob resource (uploads a :class:`~landscope.ModelSpec`'s
            weights on submit).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        blobs: Blobs | None = None,
    ) -> None:
        self._transport = transport
        self._blobs = blobs if blobs is not None else Blobs(transport)
        self._sleep = sleep if sleep is not None else time.sleep
        self._clock = clock if clock is not None else time.monotonic

    def submit(
        self, request: Mapping[str, Any] | JobRequest, *, idempotency_key: str | None = None
    ) -> Job:
        """Submit a job.

        One ``Idempotency-Key`` is sent with every attempt, so a retried submission
        never creates two jobs.

        Args:
            request: a :class:`~landscope.JobRequest` or the JSON request as a mapping.
                A request whose ``model`` is a :class:`~landscope.ModelSpec` (from
                ``from_module``) has its weights uploaded first, unless the service
                already holds those bytes.
            idempotency_key: your own key (<= 255 characters) to make resubmission
                across processes safe; a random UUID4 otherwise.

        Returns:
            The new job (or, for a replayed key, the job first created with it).

        Raises:
            UnprocessableEntityError: the request is invalid; ``errors`` says where.
        """
        if isinstance(request, JobRequest) and isinstance(request.model, ModelSpec):
            self._blobs.ensure(request.model.weights)  # content-addressed: uploaded once
        body = request.to_json() if isinstance(request, JobRequest) else dict(request)
        key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
        if not key or len(key) > 255:
            raise ValueError(f"idempotency_key must have 1 to 255 characters, got {len(key)}.")
        response = self._transport.request(
            "POST", "/v1/jobs", json=body, headers={"Idempotency-Key": key}
        )
        return Job.from_json(self._transport.json_of(response))

    def events(self, job: JobRef, *, stream: bool = False,
               after: str | None = None) -> Iterator[JobEvent]:
        """The job's events, oldest first (state changes, attempts, progress <= 1/s).

        Args:
            job: the job.
            stream: follow the job live (Server-Sent Events) until its final event,
                reconnecting with ``Last-Event-ID`` when the service ends a stream.
            after: start after this event id.
        """
        return iter_events(self._transport, _job_id(job), stream=stream, after=after)

    def get(self, job: JobRef) -> Job:
        """The job's current state.

        Raises:
            NotFoundError: no such job for this tenant.
        """
        return self._get(_job_id(job))

    def _get(self, job_id: str, *, wait: float = 0.0) -> Job:
        """The job; with ``wait`` > 0 a long poll, whose 429 ``too_many_waits`` (this API
        key holds all its wait slots) is raised at once, not retried."""
        params: dict[str, str | int] | None = None
        if wait > 0:
            params = {"wait": f"{min(wait, 30.0):.3f}"}
        response = self._transport.request(
            "GET", f"/v1/jobs/{path_segment(job_id)}", params=params,
            no_retry_codes=("too_many_waits",) if wait > 0 else (),
        )
        return Job.from_json(self._transport.json_of(response))

    def list_page(
        self,
        *,
        status: JobStatus | None = None,
        kind: str | None = None,
        metadata: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Job]:
        """One page of jobs, newest first.

        Args:
            status: only jobs with this status.
            kind: only jobs of this kind.
            metadata: only jobs whose metadata has all these pairs.
            limit: page size (the server's default and maximum apply).
            cursor: ``next_cursor`` of the previous page.

        Returns:
            The page; ``page.next_cursor`` is ``None`` on the last one.
        """
        params: dict[str, str | int] = {}
        if status is not None:
            params["status"] = status
        if kind is not None:
            params["kind"] = kind
        for key, value in (metadata or {}).items():
            params[f"metadata.{key}"] = value
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        body = self._transport.get_json("/v1/jobs", params=params)
        if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
            raise InvalidResponseError(f"Expected {{'items': [...]}}, got {body!r:.200}.")
        next_cursor = body.get("next_cursor")
        if next_cursor is not None and not isinstance(next_cursor, str):
            raise InvalidResponseError(f"next_cursor should be a string, got {next_cursor!r}.")
        return Page(
            items=tuple(Job.from_json(item) for item in body["items"]),
            next_cursor=next_cursor or None,
        )

    def list(
        self,
        *,
        status: JobStatus | None = None,
        kind: str | None = None,
        metadata: Mapping[str, str] | None = None,
        limit: int | None = None,
    ) -> Iterator[Job]:
        """Every matching job, newest first, fetching pages as the iteration needs them.

        Args:
            status: only jobs with this status.
            kind: only jobs of this kind.
            metadata: only jobs whose metadata has all these pairs.
            limit: page size of each request (not a total: use
                ``itertools.islice`` to stop early).

        Yields:
            Jobs.
        """
        cursor: str | None = None
        while True:
            page = self.list_page(
                status=status, kind=kind, metadata=metadata, limit=limit, cursor=cursor
            )
            yield from page.items
            if page.next_cursor is None:
                return
            if page.next_cursor == cursor:
                raise InvalidResponseError(f"The server returned the same cursor {cursor!r} twice.")
            cursor = page.next_cursor

    def cancel(self, job: JobRef) -> Job:
        """Cancel a job.

        A queued job turns ``cancelled`` at once; a running one gets
        ``cancel_requested`` and turns ``cancelled`` shortly (``wait`` for it).

        Raises:
            ConflictError: the job had already finished (code ``job_finished``).
        """
        response = self._transport.request("POST", f"/v1/jobs/{path_segment(_job_id(job))}/cancel")
        return Job.from_json(self._transport.json_of(response))

    def wait(
        self,
        job: JobRef,
        *,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        max_poll_interval: float = 5.0,
        progress: bool | ProgressCallback = False,
        long_poll: bool = True,
    ) -> Job:
        """Wait until the job reaches a final status.

        Each poll is a long poll (``GET /v1/jobs/{id}?wait=S``): the server answers as
        soon as the job finishes, or after S seconds, so a result arrives within
        milliseconds of the worker writing it. S starts at ``poll_interval`` and grows by
        half each time up to ``max_poll_interval`` (1 s at most while the progress
        bar is on). Against a server that answers at once, the client sleeps out the rest of
        the interval instead. When the service refuses a long poll because this API key
        already holds all its concurrent waits (429 ``too_many_waits``), the wait goes on
        with plain polls (no ``wait``), sleeping between them with the same growing
        interval. A failed or cancelled job is returned, not raised (see :meth:`result`
        for that).

        Args:
            job: the job or its id; a job already final is returned as it is.
            timeout: seconds before giving up (``None``: wait for ever).
            poll_interval: first interval between polls, in seconds.
            max_poll_interval: cap of the interval, in seconds.
            progress: ``True`` draws a progress bar on standard error (tqdm when it is
                installed, else a plain line); a callable gets every job state seen.
            long_poll: ask the server to hold each poll (``False``: plain polling).

        Returns:
            The job, with status ``succeeded``, ``failed``, ``cancelled`` or ``expired``.

        Raises:
            WaitTimeout: the deadline passed first; ``error.job`` is the last state.
        """
        if poll_interval <= 0 or max_poll_interval < poll_interval:
            raise ValueError(
                "Expected 0 < poll_interval <= max_poll_interval, got "
                f"{poll_interval} and {max_poll_interval}."
            )
        if isinstance(job, Job) and job.is_finished:
            return job
        job_id = _job_id(job)
        deadline = None if timeout is None else self._clock() + timeout
        interval = poll_interval
        cap = min(max_poll_interval, 1.0) if progress is True else max_poll_interval
        reporter = make_reporter(progress)
        held = 0.0  # how long the server held the last poll
        try:
            while True:
                started = self._clock()
                if long_poll and deadline is not None:
                    hold = max(0.0, min(interval, deadline - started))
                else:
                    hold = interval
                if long_poll:
                    try:
                        current = self._get(job_id, wait=hold)
                    except RateLimitError as e:
                        if e.code != "too_many_waits":
                            raise
                        long_poll = False  # every wait slot is taken: plain polls from here
                        started = self._clock()
                        current = self._get(job_id)
                else:
                    current = self._get(job_id)
                held = self._clock() - started
                reporter.update(current)
                match current.status:
                    case "succeeded" | "failed" | "cancelled" | "expired":
                        return current
                    case "queued" | "running":
                        pass
                    case _:
                        assert_never(current.status)
                delay = interval
                if deadline is not None and timeout is not None:
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        raise WaitTimeout(current, timeout)
                    delay = min(delay, remaining)
                delay -= held  # a server that held the poll already waited
                if delay > 0:
                    self._sleep(delay)
                interval = min(interval * 1.5, cap)
        finally:
            reporter.close()

    @overload
    def result(
        self,
        job: JobRef,
        *,
        timeout: float | None = ...,
        progress: bool | ProgressCallback = ...,
    ) -> Any: ...

    @overload
    def result(
        self,
        job: JobRef,
        result_type: type[R],
        *,
        timeout: float | None = ...,
        progress: bool | ProgressCallback = ...,
    ) -> R: ...

    def result(
        self,
        job: JobRef,
        result_type: type[Any] | None = None,
        *,
        timeout: float | None = None,
        progress: bool | ProgressCallback = False,
    ) -> Any:
        """Wait for the job and return its typed result.

        Args:
            job: the job or its id.
            result_type: the result class, for a precise static type
                (``client.jobs.result(job, EvaluateResult)``); looked up from the kind
                otherwise.
            timeout: as for :meth:`wait`.
            progress: as for :meth:`wait`.

        Returns:
            The kind's result object (e.g. :class:`~landscope.kinds.evaluate.EvaluateResult`).

        Raises:
            JobFailedError: the job failed or was cancelled; ``error.job`` has details.
            WaitTimeout: the deadline passed first.
        """
        finished = self.wait(job, timeout=timeout, progress=progress)
        if finished.status != "succeeded":
            raise JobFailedError(finished)
        if result_type is None:
            return finished.typed_result()
        return finished.typed_result(result_type)

    def artifact(self, job: JobRef, name: str) -> bytes:
        """The content of one artifact.

        Raises:
            NotFoundError: no such job or artifact.
        """
        path = f"/v1/jobs/{path_segment(_job_id(job))}/artifacts/{path_segment(name)}"
        return self._transport.request("GET", path).content

    def download_artifacts(
        self,
        job: JobRef,
        dest_dir: str | os.PathLike[str],
        *,
        names: Iterable[str] | None = None,
    ) -> builtins.list[Path]:
        """Save a job's artifacts into a folder (streamed, written atomically).

        Args:
            job: the job or its id (fetched again to list the artifacts).
            dest_dir: the folder; made if missing. Files of the same name are replaced.
            names: only these artifacts (all by default).

        Returns:
            The paths written, in the job's artifact order.

        Raises:
            KeyError: one of ``names`` is not an artifact of the job.
        """
        current = self.get(job)
        wanted = list(names) if names is not None else [a.name for a in current.artifacts]
        for name in wanted:
            current.artifact_info(name)
        dest = Path(dest_dir)
        dest.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for name in wanted:
            target = dest / _safe_artifact_name(name)
            path = f"/v1/jobs/{path_segment(current.id)}/artifacts/{path_segment(name)}"
            response = self._transport.request("GET", path, stream=True)
            fd, tmp_name = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".part")
            try:
                with response, os.fdopen(fd, "wb") as out:
                    try:
                        for chunk in response.iter_content(chunk_size=1 << 16):
                            out.write(chunk)
                    except requests.RequestException as e:
                        raise APIConnectionError(
                            f"Download of artifact {name!r} of job {current.id} broke off: {e}"
                        ) from e
                os.replace(tmp_name, target)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
            written.append(target)
        return written
