"""Shared fixtures: a private Redis server for the whole session (never the system one)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeapi import clock, fake_api  # noqa: F401  (fixtures of the SDK tests' fake API)
from liveapi import live_api, live_clock  # noqa: F401  (the real app, served in-process)

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    import redis

    from landscope_service.local import find_redis_server, free_port

    port = free_port()
    tmp = tempfile.mkdtemp(prefix="landscope-redis-")
    proc = subprocess.Popen(
        [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", tmp],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("private redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture()
def redis_client(redis_url: str):  # type: ignore[no-untyped-def]
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture()
def settings(redis_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    from landscope_service.settings import load_settings

    return load_settings(environ={
        "LANDSCOPE_REDIS_URL": redis_url,
        "LANDSCOPE_DATA_DIR": str(tmp_path / "data"),
        "LANDSCOPE_API_KEYS": "tenant-a:key-a,tenant-b:key-b",
        "LANDSCOPE_MAX_BODY_BYTES": str(2 * 1024 * 1024),
        "LANDSCOPE_MAX_JSON_BYTES": str(1024 * 1024),
        "LANDSCOPE_LEASE_S": "2",
    })


@pytest.fixture()
def app(settings, redis_client):  # type: ignore[no-untyped-def]
    from landscope_service.api import create_app

    return create_app({"TESTING": True}, settings=settings)


@pytest.fixture()
def http(app):  # type: ignore[no-untyped-def]
    return app.test_client()

