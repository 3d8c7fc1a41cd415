"""Options of the test-only ``test_block`` kind (see ``diagnostics/blocking.py``)."""

from __future__ import annotations

from . import REQUIRED, OptionSet, boolean, integer, number, string

__all__ = ["OPTIONS", "RUNNER"]

RUNNER = "landscope_service.diagnostics.blocking:run_test_block"
"""The runner, ``module:function`` (imported by workers only: it imports torch)."""

OPTIONS = OptionSet(
    name="TestBlockOptions",
    doc="Options of the test-only kind test_block.",
    fields={
        "gate": string(REQUIRED, "File whose existence releases the job.",
                       min_length=1, max_length=4096),
        "started": string(None, "File the runner writes its process id to once it waits at "
                          "the gate.", min_length=1, max_length=4096, nullable=True),
        "steps": integer(0, "Progress steps reported before waiting.", ge=0, le=1000),
        "poll_s": number(0.02, "Seconds between checks of the gate.", ge=0.001, le=1.0),
        "timeout_s": number(300.0, "Fail when the gate has not appeared after this long.",
                            ge=0.01, le=3600.0),
        "fail": string(None, "After release, fail with this message.", nullable=True),
        "ignore_cancel": boolean(False, "Never call the cancellation check (tests of the hard "
                                 "stop)."),
        "pieces": integer(0, "After release, run this many pieces through the job's "
                          "executor (fanned out to other workers when fan-out is on); each "
                          "writes its process id to started + '.piece<i>' and blocks at "
                          "gate + '.pieces' the same way (tests of helpers).", ge=0, le=16),
    },
)
