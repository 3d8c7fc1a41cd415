"""Typed views of the API's JSON documents: jobs, blobs and pages.

Every class is a frozen dataclass built with ``from_json`` from the server's answer;
``from_json`` checks the shape and raises :class:`~landscope.InvalidResponseError`
when a field is missing or has the wrong type, so that code using these classes can
trust their annotations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar, cast, get_args, overload

from landscope._exceptions import InvalidResponseError, LandscopeError

__all__ = [
    "TERMINAL_STATUSES",
    "ArtifactInfo",
    "Blob",
    "Job",
    "JobError",
    "JobStatus",
    "Page",
    "Progress",
]

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"]
"""The status of a job; ``succeeded``, ``failed``, ``cancelled`` and ``expired`` (not started
before its queue deadline) are final."""

_STATUSES: frozenset[str] = frozenset(get_args(JobStatus))
TERMINAL_STATUSES: frozenset[JobStatus] = frozenset({"succeeded", "failed", "cancelled",
                                                     "expired"})

T = TypeVar("T")
R = TypeVar("R")


def parse_timestamp(value: Any, name: str) -> datetime | None:
    """Parse an RFC 3339 timestamp (``2026-11-28T15:00:00.000000Z``) or ``None``.

    Args:
        value: the JSON value.
        name: the field name, for the error message.

    Returns:
        An aware UTC ``datetime``, or ``None`` for JSON null.

    Raises:
        InvalidResponseError: the value is not a timestamp.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidResponseError(f"Expected {name} to be a timestamp string, got {value!r}.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise InvalidResponseError(f"Expected {name} to be RFC 3339, got {value!r}.") from e
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def format_timestamp(value: datetime | None) -> str | None:
    """Format a ``datetime`` the way the API does (UTC, microseconds, ``Z``)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _get(data: Mapping[str, Any], key: str, types: type | tuple[type, ...], what: str) -> Any:
    if key not in data:
        raise InvalidResponseError(f"{what} has no {key!r} field: {dict(data)!r:.200}")
    value = data[key]
    if not isinstance(value, types) or (isinstance(value, bool) and types is not bool):
        raise InvalidResponseError(f"{what}.{key} has an unexpected value {value!r:.200}.")
    return value


def _mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidResponseError(f"Expected {what} to be a JSON object, got {data!r:.200}.")
    return data


@dataclass(frozen=True)
class Progress:
    """How far a job has come.

    Attributes:
        stage: the current stage (``queued``, ``building``, ``lanczos``, ...).
        fraction: overall completion in [0, 1].
        message: a human line about the stage, possibly empty.
    """

    stage: str
    fraction: float
    message: str = ""

    @classmethod
    def from_json(cls, data: Any) -> Progress:
        """Build from the job's ``progress`` object."""
        obj = _mapping(data, "progress")
        fraction = _get(obj, "fraction", (int, float), "progress")
        message = obj.get("message") or ""
        return cls(
            stage=str(obj.get("stage") or ""),
            fraction=float(fraction),
            message=str(message),
        )

    def to_json(self) -> dict[str, Any]:
        """The API's JSON form."""
        return {"stage": self.stage, "fraction": self.fraction, "message": self.message}


@dataclass(frozen=True)
class JobError:
    """Why a job failed.

    Attributes:
        code: a machine code such as ``out_of_memory`` or ``diverged``.
        message: a human sentence.
    """

    code: str
    message: str

    @classmethod
    def from_json(cls, data: Any) -> JobError:
        """Build from the job's ``error`` object."""
        obj = _mapping(data, "error")
        return cls(code=str(obj.get("code") or "error"), message=str(obj.get("message") or ""))

    def to_json(self) -> dict[str, Any]:
        """The API's JSON form."""
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class ArtifactInfo:
    """A file a job produced (plot, array), fetched with ``client.jobs.artifact``.

    Attributes:
        name: the file name, unique within the job.
        media_type: e.g. ``image/png``.
        size: bytes.
        sha256: hex digest of the content.
    """

    name: str
    media_type: str
    size: int
    sha256: str

    @classmethod
    def from_json(cls, data: Any) -> ArtifactInfo:
        """Build from one entry of the job's ``artifacts`` list."""
        obj = _mapping(data, "artifact")
        return cls(
            name=_get(obj, "name", str, "artifact"),
            media_type=str(obj.get("media_type") or "application/octet-stream"),
            size=int(_get(obj, "size", int, "artifact")),
            sha256=str(obj.get("sha256") or ""),
        )

    def to_json(self) -> dict[str, Any]:
        """The API's JSON form."""
        return {
            "name": self.name,
            "media_type": self.media_type,
            "size": self.size,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class Job:
    """A job as the API reports it.

    Attributes:
        id: ``job_...``.
        kind: the job kind (``evaluate``, ``hessian_spectrum``, ...).
        status: one of ``queued``, ``running``, ``succeeded``, ``failed``, ``cancelled``,
            ``expired`` (not started before its queue deadline).
        progress: stage, fraction and message.
        created_at: when the job was submitted.
        started_at: when a worker started it, if it did.
        finished_at: when it reached a final status, if it did.
        expires_at: when the record and its artifacts will be deleted.
        metadata: the caller's string pairs.
        request: the normalised request.
        result: the raw result (per kind) once succeeded; see :meth:`typed_result`.
        error: why it failed, if it did.
        artifacts: the files it produced.
        cancel_requested: a cancel was asked for while it ran.
        attempts: how many times a worker started it.
        execution: where it ran: ``{"worker": name, "pieces": {worker: count}}`` (the
            pieces of a job fanned out over several workers), once succeeded.
        estimate: the submit-time cost estimate: ``products``, ``memory_bytes``,
            ``seconds`` (``low``/``typical``/``high``) and, for ``hessian_spectrum``, the
            ``mode`` that runs (see the service's ``docs/estimates.md``).
        limits: ``max_runtime_s`` and ``queue_deadline_at`` in force.
    """

    id: str
    kind: str
    status: JobStatus
    progress: Progress
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    request: Mapping[str, Any] = field(default_factory=dict)
    result: Mapping[str, Any] | None = None
    error: JobError | None = None
    artifacts: tuple[ArtifactInfo, ...] = ()
    cancel_requested: bool = False
    attempts: int = 0
    execution: Mapping[str, Any] | None = None
    estimate: Mapping[str, Any] | None = None
    limits: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, data: Any) -> Job:
        """Build from a job document.

        Raises:
            InvalidResponseError: a required field is missing or malformed.
        """
        obj = _mapping(data, "job")
        status = _get(obj, "status", str, "job")
        if status not in _STATUSES:
            raise InvalidResponseError(
                f"Job has an unknown status {status!r}; expected one of {sorted(_STATUSES)}. "
                "Is the SDK older than the server?"
            )
        progress_raw = obj.get("progress")
        progress = (
            Progress.from_json(progress_raw)
            if progress_raw is not None
            else Progress(stage=status, fraction=1.0 if status in TERMINAL_STATUSES else 0.0)
        )
        result = obj.get("result")
        error = obj.get("error")
        artifacts = obj.get("artifacts") or []
        if not isinstance(artifacts, list):
            raise InvalidResponseError(f"job.artifacts must be a list, got {artifacts!r:.200}.")
        return cls(
            id=_get(obj, "id", str, "job"),
            kind=_get(obj, "kind", str, "job"),
            status=cast(JobStatus, status),
            progress=progress,
            created_at=parse_timestamp(obj.get("created_at"), "created_at"),
            started_at=parse_timestamp(obj.get("started_at"), "started_at"),
            finished_at=parse_timestamp(obj.get("finished_at"), "finished_at"),
            expires_at=parse_timestamp(obj.get("expires_at"), "expires_at"),
            metadata={
                str(k): str(v) for k, v in _mapping(obj.get("metadata") or {}, "metadata").items()
            },
            request=dict(_mapping(obj.get("request") or {}, "request")),
            result=dict(_mapping(result, "result")) if result is not None else None,
            error=JobError.from_json(error) if error is not None else None,
            artifacts=tuple(ArtifactInfo.from_json(a) for a in artifacts),
            cancel_requested=bool(obj.get("cancel_requested", False)),
            attempts=int(obj.get("attempts") or 0),
            execution=(
                dict(_mapping(obj["execution"], "execution"))
                if obj.get("execution") is not None else None
            ),
            estimate=(dict(_mapping(obj["estimate"], "estimate"))
                      if obj.get("estimate") is not None else None),
            limits=(dict(_mapping(obj["limits"], "limits"))
                    if obj.get("limits") is not None else None),
        )

    def to_json(self) -> dict[str, Any]:
        """The API's JSON form (what ``from_json`` reads)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "progress": self.progress.to_json(),
            "created_at": format_timestamp(self.created_at),
            "started_at": format_timestamp(self.started_at),
            "finished_at": format_timestamp(self.finished_at),
            "expires_at": format_timestamp(self.expires_at),
            "metadata": dict(self.metadata),
            "request": dict(self.request),
            "result": dict(self.result) if self.result is not None else None,
            "error": self.error.to_json() if self.error is not None else None,
            "artifacts": [a.to_json() for a in self.artifacts],
            "cancel_requested": self.cancel_requested,
            "attempts": self.attempts,
            "execution": dict(self.execution) if self.execution is not None else None,
            "estimate": dict(self.estimate) if self.estimate is not None else None,
            "limits": dict(self.limits) if self.limits is not None else None,
        }

    @property
    def is_finished(self) -> bool:
        """Whether the status is final (``succeeded``, ``failed``, ``cancelled``, ``expired``)."""
        return self.status in TERMINAL_STATUSES

    def artifact_info(self, name: str) -> ArtifactInfo:
        """The artifact called ``name``.

        Raises:
            KeyError: the job has no such artifact.
        """
        for artifact in self.artifacts:
            if artifact.name == name:
                return artifact
        names = ", ".join(a.name for a in self.artifacts) or "none"
        raise KeyError(f"Job {self.id} has no artifact {name!r} (it has: {names}).")

    @overload
    def typed_result(self) -> Any: ...

    @overload
    def typed_result(self, result_type: type[R]) -> R: ...

    def typed_result(self, result_type: type[Any] | None = None) -> Any:
        """The result as the kind's typed class (``EvaluateResult``, ...).

        Without an argument the class is looked up from ``self.kind`` in
        ``landscope.kinds`` (e.g. ``landscope.kinds.evaluate.EvaluateResult``); pass the
        class to get a precise static type: ``job.typed_result(EvaluateResult)``.

        Args:
            result_type: a class with a ``from_json(data)`` classmethod.

        Returns:
            The parsed result.

        Raises:
            JobFailedError: the job failed or was cancelled.
            LandscopeError: the job has not finished, or this SDK has no class for
                the kind (the raw dict stays in ``job.result``).
        """
        from landscope._exceptions import JobFailedError
        from landscope.kinds import result_class

        if self.status in ("failed", "cancelled"):
            raise JobFailedError(self)
        if self.status != "succeeded" or self.result is None:
            raise LandscopeError(f"Job {self.id} is {self.status}; it has no result yet.")
        cls: Any = result_type if result_type is not None else result_class(self.kind)
        return cls.from_json(self.result)


@dataclass(frozen=True)
class Blob:
    """An uploaded file (weights, data), content-addressed.

    Attributes:
        id: ``sha256:<hex>``; use it as ``model.weights`` or ``data.blob``.
        size: bytes.
        created_at: when it was first uploaded.
        expires_at: when it expires unless used before (uploaded again, or read by a
            job, renews it); ``None`` if it never expires.
    """

    id: str
    size: int
    created_at: datetime | None = None
    expires_at: datetime | None = None

    @classmethod
    def from_json(cls, data: Any) -> Blob:
        """Build from a blob document."""
        obj = _mapping(data, "blob")
        return cls(
            id=_get(obj, "id", str, "blob"),
            size=int(_get(obj, "size", int, "blob")),
            created_at=parse_timestamp(obj.get("created_at"), "created_at"),
            expires_at=parse_timestamp(obj.get("expires_at"), "expires_at"),
        )

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing.

    Attributes:
        items: the items of this page.
        next_cursor: pass it as ``cursor`` to get the next page; ``None`` on the last.
    """

    items: tuple[T, ...]
    next_cursor: str | None = None

    @property
    def has_more(self) -> bool:
        """Whether another page follows."""
        return self.next_cursor is not None
