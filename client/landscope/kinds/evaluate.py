"""The ``evaluate`` kind: loss, gradient norm, parameter count, per-sample losses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from landscope._exceptions import InvalidResponseError

from ._json import int_ as _integer
from ._json import num as _number
from ._options import EvaluateOptions

__all__ = ["EvaluateOptions", "EvaluateResult", "PerSampleLoss"]


@dataclass(frozen=True)
class PerSampleLoss:
    """Summary of the per-sample losses ``ell_i`` (mean reduction gives ``loss``).

    Attributes:
        min: smallest per-sample loss.
        mean: their mean (equals ``loss`` for a full-batch evaluation).
        max: largest per-sample loss.
    """

    min: float
    mean: float
    max: float

    @classmethod
    def from_json(cls, data: Any) -> PerSampleLoss:
        """Build from ``result.per_sample_loss``."""
        if not isinstance(data, Mapping):
            raise InvalidResponseError(f"per_sample_loss should be an object, got {data!r}.")
        what = "per_sample_loss"
        return cls(
            min=_number(data, "min", what),
            mean=_number(data, "mean", what),
            max=_number(data, "max", what),
        )


@dataclass(frozen=True)
class EvaluateResult:
    """Result of ``evaluate``.

    Attributes:
        loss: the mean loss over the data.
        grad_norm: Euclidean norm of the gradient of ``loss`` in the parameters.
        num_params: P, the number of parameters.
        num_samples: N, the number of data points.
        per_sample_loss: min, mean and max of the per-sample losses.
        theory: which results of THEORY.md apply and their checks (free-form JSON).
    """

    loss: float
    grad_norm: float
    num_params: int
    num_samples: int
    per_sample_loss: PerSampleLoss
    theory: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvaluateResult:
        """Build from the job's ``result`` object.

        Raises:
            InvalidResponseError: a field is missing or has the wrong type.
        """
        if not isinstance(data, Mapping):
            raise InvalidResponseError(f"evaluate result should be an object, got {data!r}.")
        what = "result"
        theory = data.get("theory") or {}
        if not isinstance(theory, Mapping):
            raise InvalidResponseError(f"result.theory should be an object, got {theory!r}.")
        return cls(
            loss=_number(data, "loss", what),
            grad_norm=_number(data, "grad_norm", what),
            num_params=_integer(data, "num_params", what),
            num_samples=_integer(data, "num_samples", what),
            per_sample_loss=PerSampleLoss.from_json(data.get("per_sample_loss")),
            theory=dict(theory),
        )
