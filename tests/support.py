"""Helpers shared by test modules (importable as ``support``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

AUTH_A = {"Authorization": "Bearer key-a"}
AUTH_B = {"Authorization": "Bearer key-b"}


def evaluate_request(num_samples: int = 64, batch_size: int | None = None,
                     seed: int = 0, **extra: object) -> dict[str, object]:
    """A small evaluate job (quick). For a job that runs as long as a test wants, use
    :func:`block_request`, never a job made long by size."""
    req: dict[str, object] = {
        "kind": "evaluate",
        "model": {"architecture": {"type": "mlp", "input_dim": 3, "hidden": [8, 8],
                                   "output_dim": 1, "activation": "tanh", "bias": True},
                  "init_seed": 0},
        "data": {"synthetic": {"name": "teacher_student", "num_samples": num_samples,
                               "seed": seed}},
        "loss": "mse",
        "dtype": "float64",
    }
    if batch_size is not None:
        req["batch_size"] = batch_size
    req.update(extra)
    return req


def block_request(gate: str, **options: object) -> dict[str, object]:
    """A ``test_block`` job (needs ``LANDSCOPE_TEST_KINDS=1`` on the API and worker).

    It runs until the file ``gate`` exists; ``options`` may add ``started`` (a file the
    runner writes its pid to once blocked), ``steps``, ``fail``, ``ignore_cancel``,
    ``poll_s``, ``timeout_s`` (see docs/adding-a-kind.md).
    """
    req = evaluate_request(num_samples=4)
    req["kind"] = "test_block"
    req["options"] = {"gate": gate, **options}
    return req


def wait_file(path: Path | str, timeout: float = 60) -> str:
    """Wait until ``path`` exists (an event: a ``test_block`` job reached its gate) and
    return its text; the deadline only turns a hang into a failure."""
    path = Path(path)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared within {timeout:g} s")
        time.sleep(0.02)
    return path.read_text()


def expire_lease(redis_url: str, job_id: str) -> None:
    """Let a running attempt's lease lapse now (the test's clock, not a sleep): the reaper
    (any worker's sweep, or the next GET of the job) then treats its worker as dead."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        assert client.pexpire(f"ls:lease:{job_id}", 1), f"job {job_id} holds no lease"
    finally:
        client.close()


CliRun = Callable[..., subprocess.CompletedProcess[str]]
"""Runs the ``landscope`` CLI with the given arguments (see :func:`landscope_cli`)."""


def landscope_cli(url: str, api_key: str = "key-a") -> CliRun:
    """A runner of the installed ``landscope`` command against the API at ``url``: text
    output captured, 300 s cap per call."""
    env = {**os.environ, "LANDSCOPE_URL": url, "LANDSCOPE_API_KEY": api_key}
    cli = [str(Path(sys.executable).with_name("landscope"))]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], capture_output=True, text=True, env=env,
                              timeout=300)

    return run


def cli_submit(run: CliRun, request: dict[str, Any], path: Path) -> str:
    """``landscope submit`` of ``request`` (written to ``path``); the job id."""
    path.write_text(json.dumps(request))
    sub = run("submit", str(path), "--json")
    assert sub.returncode == 0, sub.stderr
    return str(json.loads(sub.stdout)["id"])


def cli_wait(run: CliRun, job_id: str) -> dict[str, Any]:
    """``landscope wait --no-progress --json``: the finished job as the CLI printed it."""
    waited = run("wait", job_id, "--no-progress", "--json")
    assert waited.returncode == 0, waited.stderr
    return dict(json.loads(waited.stdout))
