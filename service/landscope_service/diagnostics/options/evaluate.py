"""Options of ``evaluate``: the one hand-written source (see the package doc)."""

from __future__ import annotations

from . import OptionSet, number

__all__ = ["OPTIONS", "RUNNER"]

RUNNER = "landscope_service.diagnostics.evaluate:run_evaluate"
"""The runner, ``module:function`` (imported by workers only: it imports torch)."""

OPTIONS = OptionSet(
    name="EvaluateOptions",
    doc="Options of evaluate.",
    fields={
        "stationary_tol": number(1e-6, "The point counts as stationary when "
                                 "grad_norm <= this.", gt=0),
    },
)
