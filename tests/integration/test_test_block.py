"""The test-only ``test_block`` kind through the real stack: blocked, released, cancelled,
failed on request. Other integration tests use it for jobs that run as long as they want."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import landscope

from support import block_request

pytestmark = pytest.mark.integration


def _wait_file(path: Path, timeout: float = 60) -> str:
    """Wait for an event (the runner reached its gate), with a deadline against hangs."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)
    return path.read_text()


def test_blocks_until_released_with_progress(client_a: landscope.Client,
                                             tmp_path: Path) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    job = client_a.jobs.submit(block_request(str(gate), started=str(started), steps=3))
    assert int(_wait_file(started)) > 0
    running = client_a.jobs.get(job.id)
    assert running.status == "running"
    assert running.progress.stage == "test_block" and running.progress.fraction == 0.75
    gate.touch()
    done = client_a.jobs.wait(job.id, timeout=60)
    assert done.status == "succeeded", done.error
    assert done.result is not None and done.result["released"] is True


def test_cancel_while_blocked(client_a: landscope.Client, tmp_path: Path) -> None:
    started = tmp_path / "started"
    job = client_a.jobs.submit(block_request(str(tmp_path / "gate"), started=str(started)))
    _wait_file(started)
    client_a.jobs.cancel(job.id)
    done = client_a.jobs.wait(job.id, timeout=60)  # never released: only the cancel ends it
    assert done.status == "cancelled"


def test_fails_on_request(client_a: landscope.Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    done = client_a.jobs.wait(client_a.jobs.submit(block_request(str(gate), fail="asked to")).id,
                              timeout=60)
    assert done.status == "failed"
    assert done.error is not None and "asked to" in done.error.message


def test_options_are_validated_at_submit(client_a: landscope.Client) -> None:
    req = block_request("")
    with pytest.raises(landscope.UnprocessableEntityError) as e:
        client_a.jobs.submit(req)
    assert "gate" in str(e.value.errors)
