"""Monitor: progress never goes backwards at the root; cancellation is remembered."""

from __future__ import annotations

import pytest

from landscope_service.diagnostics import Cancelled, Monitor


def test_root_progress_is_monotone_across_overlapping_subranges() -> None:
    seen: list[tuple[str, float, str]] = []
    root = Monitor(progress=lambda s, f, m: seen.append((s, f, m)), min_interval=0.0)
    probes = root.sub(0.5, 0.85, "probes")
    probes.report("x", 0.8)          # 0.78
    probes.sub(0.0, 1.0).report("x", 0.2)  # a piece restarting its own count: 0.57
    probes.report("x", 0.9)          # 0.815
    root.report("ggn", 0.6)          # a later stage that reports a lower fraction
    fracs = [f for _, f, _ in seen]
    assert fracs == sorted(fracs)
    assert fracs == pytest.approx([0.78, 0.78, 0.815, 0.815])
    # the stage and the message still update when the fraction is held
    assert seen[-1][0] == "ggn"


def test_fractions_are_clipped_and_cancel_is_sticky() -> None:
    seen: list[float] = []
    calls = []

    def should_cancel() -> bool:
        calls.append(1)
        return len(calls) == 1

    root = Monitor(progress=lambda s, f, m: seen.append(f), should_cancel=should_cancel,
                   min_interval=0.0)
    root.report("a", 1.7)
    root.report("b", -1.0)
    assert seen == [1.0, 1.0]
    with pytest.raises(Cancelled):
        root.sub(0, 1).check()
    with pytest.raises(Cancelled):  # remembered without asking again
        root.check()
    assert len(calls) == 1
