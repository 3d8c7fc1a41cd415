"""Redis durability with real processes: kill -9 of Redis, its restart by the stack, and
nothing the API acknowledged is lost or duplicated; queued jobs still run.

Run twice: with the local stack's Redis settings (``LOCAL_REDIS_ARGS``: AOF, fsync every
second) and with the production settings of ``deploy/compose.yaml`` (its Redis command,
``${VAR:-default}`` resolved to the defaults). Redis is killed only after it reports
every acknowledged write flushed to its append-only file (``aof_buffer_length:0``),
which is the state ``appendfsync everysec`` reaches within a second: the test waits on
that state, not on time. The worker is held busy by a ``test_block`` job, so every other
job is still queued when Redis dies.
"""

from __future__ import annotations

import io
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import yaml

import landscope
from landscope_service.local import LOCAL_REDIS_ARGS, LocalStack

from support import block_request, evaluate_request

pytestmark = pytest.mark.integration

KEYS = "tenant-a:key-a"
COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"
QUEUED = 12


def compose_redis_args() -> tuple[str, ...]:
    """The redis service's command in deploy/compose.yaml, defaults substituted."""
    command = yaml.safe_load(COMPOSE.read_text())["services"]["redis"]["command"]
    assert command[0] == "redis-server"
    args = [re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(a)) for a in command[1:]]
    assert not any("$" in a for a in args), args
    return tuple(args)


def _until(what: str, predicate: Callable[[], Any], timeout: float = 60) -> Any:
    """Wait for a state (never for a time), with a deadline against hangs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (redis.ConnectionError, landscope.LandscopeError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout} s")
        time.sleep(0.05)


@pytest.fixture(params=["local", "compose"])
def durable_stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    args = LOCAL_REDIS_ARGS if request.param == "local" else compose_redis_args()
    st = LocalStack(api_keys=KEYS, workers=1, concurrency=1, api_workers=2, redis_args=args,
                    env={"LANDSCOPE_TEST_KINDS": "1", "LANDSCOPE_LEASE_S": "5",
                         "LANDSCOPE_LOG_LEVEL": "INFO"})
    try:
        st.start(timeout=120)
    except BaseException:
        print(st.logs())
        st.stop()
        raise
    try:
        yield st
    except BaseException:
        print(st.logs())
        raise
    finally:
        st.stop()


def _aof_flushed(r: redis.Redis) -> bool:
    info = r.info("persistence")
    return bool(info["aof_enabled"]) and info["aof_buffer_length"] == 0 \
        and info["aof_last_write_status"] == "ok"


def test_kill_9_of_redis_loses_and_duplicates_nothing(durable_stack: LocalStack,
                                                      tmp_path: Path) -> None:
    st = durable_stack
    r = redis.Redis.from_url(st.redis_url)
    assert r.config_get("appendonly")["appendonly"] == "yes"
    assert Path(r.config_get("dir")["dir"]) == st.redis_dir  # in the stack's data folder
    with landscope.Client(st.url, api_key="key-a", timeout=30, max_retries=5) as client:
        try:
            _kill_and_check(st, r, client, tmp_path)
        except BaseException:
            print(st.logs())
            raise


def _kill_and_check(st: LocalStack, r: redis.Redis, client: landscope.Client,
                    tmp_path: Path) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"

    blocker = client.jobs.submit(block_request(str(gate), started=str(started)),
                                 idempotency_key="blocker")
    _until("the worker is busy with the blocking job", started.exists)
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buf, x=rng.normal(size=(16, 3)), y=rng.normal(size=(16, 1)))
    blob = client.blobs.upload(buf.getvalue())
    acked: dict[str, str] = {"blocker": blocker.id}
    for i in range(QUEUED):
        req = evaluate_request(num_samples=8, seed=i)
        if i % 2:
            req["data"] = {"blob": blob.id, "format": "npz"}
        acked[f"job-{i}"] = client.jobs.submit(req, idempotency_key=f"job-{i}").id

    _until("every acknowledged write is in the AOF", lambda: _aof_flushed(r))
    old_pid = st.redis_pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    _until("the stack restarted Redis", lambda: st.redis_restarts >= 1 and st.redis_pid != old_pid)
    _until("Redis answers after loading its AOF", lambda: r.ping())

    # Nothing lost: every job, the blob, and every idempotency key.
    for key, job_id in acked.items():
        job = client.jobs.get(job_id)
        assert job.status in ("queued", "running"), (key, job.status, job.error)
    assert client.blobs.get(blob.id).size == blob.size
    for key, job_id in acked.items():
        if key == "blocker":
            continue
        i = int(key.split("-")[1])
        req = evaluate_request(num_samples=8, seed=i)
        if i % 2:
            req["data"] = {"blob": blob.id, "format": "npz"}
        assert client.jobs.submit(req, idempotency_key=key).id == job_id, key
    listed = [j.id for j in client.jobs.list()]
    assert sorted(listed) == sorted(acked.values()), "a job was lost or duplicated"

    # Queued jobs still run, each exactly once.
    gate.touch()
    for key, job_id in acked.items():
        done = client.jobs.wait(job_id, timeout=120)
        assert done.status == "succeeded", (key, done.error)
        assert done.attempts == 1, (key, done.attempts)
    assert sorted(j.id for j in client.jobs.list()) == sorted(acked.values())
