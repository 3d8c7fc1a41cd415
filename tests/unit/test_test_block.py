"""The test-only ``test_block`` kind: its runner (pure core) and its registration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from landscope_service.diagnostics import Cancelled, Monitor, Problem, RunContext
from landscope_service.diagnostics.blocking import run_test_block
from landscope_service.jobs.kinds.test_block import TestBlockOptionsSchema
from landscope_service.jobs.registry import TEST_KINDS_ENV, kinds, public_kinds


def _problem() -> Problem:
    model = torch.nn.Linear(1, 1)
    params = {k: v.detach() for k, v in model.named_parameters()}
    return Problem(model, params, torch.zeros(2, 1), torch.zeros(2, 1), "mse")


def _options(gate: Path, **extra: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = TestBlockOptionsSchema().load({"gate": str(gate), **extra})
    return loaded


class Recorder:
    """Monitor callbacks that record progress and act on the n-th cancellation poll."""

    def __init__(self, on_poll: Any = None) -> None:
        self.events: list[tuple[str, float, str]] = []
        self.polls = 0
        self.on_poll = on_poll

    def progress(self, stage: str, fraction: float, message: str) -> None:
        self.events.append((stage, fraction, message))

    def should_cancel(self) -> bool:
        self.polls += 1
        return bool(self.on_poll(self.polls)) if self.on_poll else False

    def ctx(self) -> RunContext:
        return RunContext(monitor=Monitor(progress=self.progress,
                                          should_cancel=self.should_cancel, min_interval=0.0))


def test_released_by_the_gate_with_monotone_progress_and_a_cancel_check_per_iteration(
        tmp_path: Path) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"

    def release_on_tenth(n: int) -> bool:
        if n == 10:
            assert started.read_text() == str(os.getpid())  # written before waiting
            gate.touch()
        return False

    rec = Recorder(release_on_tenth)
    out = run_test_block(_problem(), _options(gate, steps=3, started=str(started),
                                              poll_s=0.001), rec.ctx())
    # 3 step checks, then one check per wait iteration (polls 4 to 10; the gate appears
    # during the 10th), then one final check: exactly 11 polls, 7 of them while waiting.
    assert rec.polls == 11
    assert out.result == {"released": True, "steps": 3, "polls": 7}
    fractions = [f for _, f, _ in rec.events]
    assert fractions[:4] == [0.25, 0.5, 0.75, 0.75]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {s for s, _, _ in rec.events} == {"test_block"}


def test_cancellation_stops_it_at_the_next_iteration(tmp_path: Path) -> None:
    rec = Recorder(lambda n: n >= 5)
    with pytest.raises(Cancelled):
        run_test_block(_problem(), _options(tmp_path / "gate", poll_s=0.001), rec.ctx())
    assert rec.polls == 5


def test_ignore_cancel_never_polls_and_fail_raises_after_release(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    calls: list[float] = []

    def progress(stage: str, fraction: float, message: str) -> None:
        calls.append(fraction)
        if len(calls) == 3:
            gate.touch()

    asked: list[int] = []
    ctx = RunContext(monitor=Monitor(progress=progress, should_cancel=lambda: asked.append(1)
                                     or True, min_interval=0.0))
    with pytest.raises(RuntimeError, match=r"^boom$"):
        run_test_block(_problem(), _options(gate, ignore_cancel=True, fail="boom",
                                            poll_s=0.001), ctx)
    assert asked == []


def test_gives_up_after_timeout(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"did not appear within timeout_s=0\.01"):
        run_test_block(_problem(), _options(tmp_path / "gate", timeout_s=0.01, poll_s=0.001),
                       RunContext())


def test_options_are_checked() -> None:
    from marshmallow import ValidationError

    with pytest.raises(ValidationError) as e:
        TestBlockOptionsSchema().load({})
    assert "gate" in e.value.messages
    with pytest.raises(ValidationError) as e:
        TestBlockOptionsSchema().load({"gate": "g", "steps": -1, "color": 1})
    assert set(e.value.messages) == {"steps", "color"}


def test_registered_only_when_the_setting_is_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TEST_KINDS_ENV, raising=False)
    assert "test_block" not in kinds()
    monkeypatch.setenv(TEST_KINDS_ENV, "0")
    assert "test_block" not in kinds()
    monkeypatch.setenv(TEST_KINDS_ENV, "1")
    assert "test_block" in kinds()
    assert "test_block" not in public_kinds()
    assert kinds(include_test=False) == public_kinds()


def test_never_in_the_openapi_document(monkeypatch: pytest.MonkeyPatch) -> None:
    from landscope_service.api.openapi import generate

    monkeypatch.setenv(TEST_KINDS_ENV, "1")
    text = str(generate())
    assert "TestBlock" not in text and "test_block" not in text
