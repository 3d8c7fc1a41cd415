"""Options of ``evaluate``: the one hand-written source (see the package doc)."""

from __future__ import annotations

from . import OptionSet, group, integer, number

__all__ = ["OPTIONS", "PARALLEL", "RUNNER"]

RUNNER = "landscope_service.diagnostics.evaluate:run_evaluate"
"""The runner, ``module:function`` (imported by workers only: it imports torch)."""

PARALLEL = OptionSet(
    name="ParallelOptions",
    doc="Data-parallel products: the batches cut into shards whose partial sums are added "
        "(docs/data.md).",
    fields={
        "shards": integer(1, "Shards of the data set per loss, gradient or Hessian product, "
                          "run as pieces on the job's workers (1: none; 0: auto, one per "
                          "fan-out slot, LANDSCOPE_FANOUT + 1, at most one per batch).",
                          ge=0, le=64),
    },
)

OPTIONS = OptionSet(
    name="EvaluateOptions",
    doc="Options of evaluate.",
    fields={
        "stationary_tol": number(1e-6, "The point counts as stationary when "
                                 "grad_norm <= this.", gt=0),
        "parallel": group(PARALLEL, "Loss and gradient as shards over the job's workers."),
    },
)
