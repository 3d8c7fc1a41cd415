"""`landscope-service up`: the all-in-one local stack honours --port and
LANDSCOPE_API_KEYS, serves jobs, and stops everything it started on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests

import landscope
from landscope_service.local import free_port

from support import evaluate_request

pytestmark = pytest.mark.integration


def test_up_serves_and_stops_on_sigterm() -> None:
    port = free_port()
    exe = str(Path(sys.executable).with_name("landscope-service"))
    env = {**os.environ, "LANDSCOPE_API_KEYS": "ops:secret-key", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([exe, "up", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "LANDSCOPE_API_KEY=" in line:
                break
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}" in text, text
        assert "LANDSCOPE_API_KEY=secret-key" in text, text
        with landscope.Client(f"http://127.0.0.1:{port}", api_key="secret-key") as client:
            job = client.jobs.wait(client.jobs.submit(evaluate_request()).id, timeout=120)
            assert job.status == "succeeded"
        (redis_port,) = {int(p) for p in re.findall(r"redis://127\.0\.0\.1:(\d+)", text)}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        children = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True,
                                  text=True).stdout.split()
        assert children == [], "processes of the stack outlived it"
        with pytest.raises(redis.ConnectionError):
            redis.Redis(port=redis_port, socket_connect_timeout=2).ping()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
