"""What the tracker integrations log: a result's scalar metrics under sanitised keys,
the request as flat parameters, and a job's figures."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from landscope.types import Job

__all__ = ["Logged", "figures", "flat_metrics", "flat_params", "prepare", "sanitise"]

_BAD = re.compile(r"[^A-Za-z0-9_.\-/ ]")
_SKIP_PARAMS = ("data.inline",)  # large and not a setting
MAX_PARAM_CHARS = 500


def sanitise(key: str) -> str:
    """A metric or parameter key both MLflow and W&B accept: ``[A-Za-z0-9_.-/ ]`` only,
    ``[i]`` list indices as ``.i``."""
    key = re.sub(r"\[(\d+)\]", r".\1", key)
    return _BAD.sub("_", key)[:250]


def _walk(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _walk(v, f"{prefix}[{i}]")
    else:
        yield prefix, value


def flat_metrics(result: Mapping[str, Any], *, max_list: int = 16) -> dict[str, float]:
    """Finite numbers of a result (booleans as 0/1), nested keys joined by ``.``; lists
    longer than ``max_list`` (curves, grids) are left to tables and figures."""
    out: dict[str, float] = {}

    def visit(value: Any, prefix: str) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                visit(v, f"{prefix}.{k}" if prefix else str(k))
        elif isinstance(value, list | tuple):
            if len(value) <= max_list:
                for i, v in enumerate(value):
                    visit(v, f"{prefix}.{i}")
        elif isinstance(value, bool):
            out[sanitise(prefix)] = float(value)
        elif isinstance(value, int | float) and math.isfinite(value):
            out[sanitise(prefix)] = float(value)

    visit(result, "")
    return out


def flat_params(request: Mapping[str, Any]) -> dict[str, str]:
    """The request's settings as string parameters (inline data left out)."""
    out: dict[str, str] = {}
    for key, value in _walk(request, ""):
        if any(key.startswith(s) for s in _SKIP_PARAMS) or value is None:
            continue
        out[sanitise(key)] = str(value)[:MAX_PARAM_CHARS]
    return out


@dataclass
class Logged:
    """What one call logs."""

    metrics: dict[str, float]
    params: dict[str, str]
    request: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    kind: str = ""


def _as_dict(result: Any) -> dict[str, Any]:
    if isinstance(result, Job):
        return dict(result.result or {})
    if isinstance(result, Mapping):
        return dict(result)
    raw = getattr(result, "__dict__", None)
    if raw is None:
        raise TypeError(f"Expected a Job, a result mapping or a typed result, got "
                        f"{type(result).__name__}.")
    import dataclasses

    return dataclasses.asdict(result)


def figures(job: Job, client: Any) -> dict[str, bytes]:
    """The job's image artifacts (name -> bytes), fetched with ``client``."""
    return {a.name: client.jobs.artifact(job, a.name) for a in job.artifacts
            if a.media_type.startswith("image/")}


def prepare(result: Any, *, client: Any = None, prefix: str = "landscope") -> Logged:
    """Metrics, params and figures of a :class:`~landscope.Job` (its figures when a
    ``client`` is given), a typed result, or a result mapping."""
    data = _as_dict(result)
    request = dict(result.request) if isinstance(result, Job) else {}
    kind = result.kind if isinstance(result, Job) else str(data.get("kind", ""))
    pre = f"{prefix}." if prefix else ""
    metrics = {pre + k: v for k, v in flat_metrics(data).items()}
    params = {pre + k: v for k, v in flat_params(request).items()}
    figs = figures(result, client) if isinstance(result, Job) and client is not None else {}
    return Logged(metrics=metrics, params=params, request=request, result=data,
                  figures=figs, kind=kind)
