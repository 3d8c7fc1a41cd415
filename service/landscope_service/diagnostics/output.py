"""What a diagnostic returns: a JSON-able result and named artifacts (files)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Artifact", "RunOutput"]


@dataclass(frozen=True)
class Artifact:
    """A file produced by a run: a plot (``image/png``), an array file, a JSON table."""

    name: str
    media_type: str
    data: bytes


@dataclass
class RunOutput:
    """Result of one job kind's runner.

    ``result`` holds only JSON types (dict, list, str, int, float, bool, None); floats
    must be finite or None. Large arrays go to ``artifacts``.
    """

    result: dict[str, Any]
    artifacts: list[Artifact] = field(default_factory=list)
