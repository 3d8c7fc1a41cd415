"""Test-only job kind ``test_block``: a job that runs exactly as long as its test wants.

Integration tests need a job that is *running* at a moment the test chooses (to cancel
it, kill its worker, watch its progress, or let a deadline pass) without making the job
long by size and racing the clock. This runner blocks until a *gate* file exists,
polling with short waits; the test creates the file to release it. It never touches the
problem it is given (the worker builds one from the request as for every kind).

While it runs it:

* writes its process id to ``started`` (if given) once it reaches the gate, so a test
  knows the job is blocked and which process to signal;
* reports ``steps`` progress steps first (fractions ``i / (steps + 1)``), then stays at
  ``steps / (steps + 1)`` while waiting: progress never goes backwards;
* calls the cooperative cancellation check on every iteration, unless
  ``ignore_cancel`` is true (to test the hard stop after a grace period);
* after release, fails with ``fail`` as the message if given, else succeeds;
* gives up with an error after ``timeout_s`` so a forgotten job cannot hold a worker;
* with ``pieces``, after release runs that many pieces through the job's executor (fanned
  out to helper tasks on other workers), each blocking at ``gate + '.pieces'``.

The kind is registered only when ``LANDSCOPE_TEST_KINDS`` is true; it is never in the
public OpenAPI document or the SDK.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .context import RunContext
from .options.test_block import OPTIONS
from .output import RunOutput
from .problem import Problem

__all__ = ["block_piece", "run_test_block"]

STAGE = "test_block"


def run_test_block(problem: Problem, options: dict[str, Any], ctx: RunContext) -> RunOutput:
    """Runner of the test-only ``test_block`` kind (see the module docstring).

    Args:
        problem: ignored.
        options: see ``options/test_block.py`` (``gate`` is required).
        ctx: progress and cancellation.

    Returns:
        ``{"released": True, "steps": steps, "polls": polls}``, plus ``"pieces"`` when
        pieces ran.

    Raises:
        RuntimeError: ``fail`` was given (after release), or the gate did not appear
            within ``timeout_s``.
        Cancelled: cancellation was requested (unless ``ignore_cancel``).
    """
    options = OPTIONS.resolve(options)
    gate = Path(options["gate"])
    started = options["started"]
    steps = int(options["steps"])
    poll_s = float(options["poll_s"])
    timeout_s = float(options["timeout_s"])
    ignore_cancel = bool(options["ignore_cancel"])
    monitor = ctx.monitor

    def check() -> None:
        if not ignore_cancel:
            monitor.check()

    for i in range(1, steps + 1):
        check()
        monitor.report(STAGE, i / (steps + 1), f"step {i}/{steps}", force=True)
    waiting = steps / (steps + 1)
    monitor.report(STAGE, waiting, f"waiting for {gate.name}", force=True)
    if started:
        _write_pid(Path(str(started)))
    deadline = time.monotonic() + timeout_s
    polls = 0
    while not gate.exists():
        check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"test_block: the gate {gate} did not appear within "
                               f"timeout_s={timeout_s:g} s.")
        polls += 1
        monitor.report(STAGE, waiting, f"waiting for {gate.name}")
        time.sleep(poll_s)
    check()
    fail = options["fail"]
    if fail:
        raise RuntimeError(str(fail))
    pieces = int(options["pieces"])
    if pieces:
        payloads = [{"gate": str(gate) + ".pieces",
                     "started": f"{started}.piece{i}" if started else None,
                     "poll_s": poll_s, "timeout_s": timeout_s,
                     "ignore_cancel": ignore_cancel} for i in range(pieces)]
        ctx.executor.map(block_piece, problem, payloads, monitor.sub(waiting, 1.0, "pieces"))
    monitor.report(STAGE, 1.0, "released", force=True)
    result: dict[str, Any] = {"released": True, "steps": steps, "polls": polls}
    if pieces:
        result["pieces"] = pieces
    return RunOutput(result=result)


def _write_pid(path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(str(os.getpid()))
    tmp.replace(path)  # atomic: a reader never sees an empty file


def block_piece(problem: Problem, payload: dict[str, Any], monitor: Any) -> dict[str, Any]:
    """One piece of a ``pieces`` run: write the process id, block at the gate (checking
    for cancellation on every poll unless ``ignore_cancel``), return the process id."""
    if payload.get("started"):
        _write_pid(Path(str(payload["started"])))
    gate = Path(str(payload["gate"]))
    deadline = time.monotonic() + float(payload["timeout_s"])
    while not gate.exists():
        if not payload["ignore_cancel"]:
            monitor.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"test_block piece: the gate {gate} did not appear.")
        time.sleep(float(payload["poll_s"]))
    return {"pid": os.getpid()}
