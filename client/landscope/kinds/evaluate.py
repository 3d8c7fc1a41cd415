"""The ``evaluate`` kind: loss, gradient norm, parameter count, per-sample losses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._options import EvaluateOptions
from ._read import FromJson

__all__ = ["EvaluateOptions", "EvaluateResult", "Parallel", "PerSampleLoss", "Shard"]


@dataclass(frozen=True)
class Shard(FromJson):
    """One shard of a data-parallel job (``options.parallel.shards``).

    Attributes:
        samples: its sample range ``[start, stop)``.
        ran_on: where it ran (``host:pid``; for a Hessian, its last product).
    """

    samples: tuple[int, ...]
    ran_on: str


@dataclass(frozen=True)
class Parallel(FromJson):
    """How a job's products were split (docs/data.md).

    Attributes:
        shards: the shards, in data order.
    """

    shards: tuple[Shard, ...]


@dataclass(frozen=True)
class PerSampleLoss(FromJson):
    """Summary of the per-sample losses ``ell_i`` (mean reduction gives ``loss``).

    Attributes:
        min: smallest per-sample loss.
        mean: their mean (equals ``loss`` for a full-batch evaluation).
        max: largest per-sample loss.
    """

    min: float
    mean: float
    max: float


@dataclass(frozen=True)
class EvaluateResult(FromJson):
    """Result of ``evaluate``.

    Attributes:
        loss: the mean loss over the data.
        grad_norm: Euclidean norm of the gradient of ``loss`` in the parameters.
        num_params: P, the number of parameters.
        num_samples: N, the number of data points.
        per_sample_loss: min, mean and max of the per-sample losses.
        theory: which results of THEORY.md apply and their checks (free-form JSON).
        parallel: the shards, when the job ran with ``options.parallel.shards > 1``.
    """

    loss: float
    grad_norm: float
    num_params: int
    num_samples: int
    per_sample_loss: PerSampleLoss
    theory: Mapping[str, Any] = field(default_factory=dict)
    parallel: Parallel | None = None
