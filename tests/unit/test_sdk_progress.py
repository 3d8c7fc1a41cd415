"""The SDK's progress display off a terminal: at most one line per stage and one per 10 %
(a log never fills with redraws), the percentages never go backwards, and tqdm is used
only on a terminal."""

from __future__ import annotations

import io
import re

import fakeapi as fk
import pytest

from landscope import Job
from landscope._progress import LineProgress, TqdmProgress, is_terminal, make_reporter


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _job(fraction: float, stage: str, message: str = "") -> Job:
    return Job.from_json({**fk.new_job("hessian_spectrum", {}),
                          **fk.running(fraction, stage, message)})


def _percents(text: str) -> list[float]:
    return [float(m) for m in re.findall(r"\]\s+([\d.]+)%", text)]


def test_off_a_terminal_one_line_per_ten_percent() -> None:
    stream = io.StringIO()
    bar = make_reporter(True, stream)
    assert isinstance(bar, LineProgress)
    for i in range(1001):  # 1,001 updates of one stage, messages changing every time
        bar.update(_job(i / 1000, "lanczos", f"product {i}"))
    bar.update(Job.from_json({**fk.new_job("hessian_spectrum", {}), **fk.succeeded()}))
    bar.close()
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    # 0 %, 10 %, ..., 100 % of the stage (11 steps), then the terminal status
    assert len(lines) == 12
    assert _percents(text) == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0,
                               100.0, 100.0]
    assert lines[-1].endswith("100.0% succeeded done")


def test_off_a_terminal_each_stage_gets_a_line() -> None:
    stream = io.StringIO()
    bar = LineProgress(stream)
    for frac, stage in [(0.0, "fit"), (0.01, "fit"), (0.02, "rank"), (0.03, "rank"),
                        (0.04, "walk"), (0.05, "walk"), (0.06, "walk")]:
        bar.update(_job(frac, stage))
    lines = stream.getvalue().splitlines()
    assert [ln.split()[-1] for ln in lines] == ["fit", "rank", "walk"]
    assert _percents(stream.getvalue()) == sorted(_percents(stream.getvalue()))


def test_tqdm_only_on_a_terminal() -> None:
    pytest.importorskip("tqdm")
    assert isinstance(make_reporter(True, Tty()), TqdmProgress)
    assert isinstance(make_reporter(True, io.StringIO()), LineProgress)


def test_is_terminal_is_false_when_it_cannot_tell() -> None:
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed)
    assert not is_terminal(io.StringIO())
    assert is_terminal(Tty())
