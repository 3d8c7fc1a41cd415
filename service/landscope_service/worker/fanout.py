"""Spreading a job's independent pieces over Celery workers.

The job's task (the *parent*) puts the pieces' payloads in Redis and starts a Celery
``group`` of ``landscope.run_pieces`` helper tasks on its own queue. Parent and helpers
then take pieces off one shared list until it is empty, so a single worker completes the
job alone (the parent never blocks on a subtask that no free worker could run), and
with more workers the pieces spread over all of them. A helper holds a lease on each
piece it runs; a piece whose helper died goes back on the list.

Payloads and results are dicts whose top-level values are JSON values or tensors; the
tensors travel as safetensors, never pickle.
"""

from __future__ import annotations

import importlib
import json
import logging
import struct
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .watchdog import PollingThread

if TYPE_CHECKING:
    from celery import Celery

    from ..diagnostics import Monitor, Problem
    from .runtime import JobRuntime

__all__ = ["FanoutExecutor", "help_with_pieces", "make_executor_factory", "pack", "unpack"]

log = logging.getLogger("landscope.fanout")
_KEY_TTL_S = 24 * 3600

_POP_AND_CLAIM = """
local i = redis.call('LPOP', KEYS[1])
if i then redis.call('SET', KEYS[2] .. i, ARGV[1], 'PX', ARGV[2]) end
return i
"""


def pack(d: dict[str, Any]) -> bytes:
    """``{json..., tensors...}`` -> header length, JSON, safetensors bytes."""
    import torch
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in d.items()
               if isinstance(v, torch.Tensor)}
    rest = {k: v for k, v in d.items() if k not in tensors}
    head = json.dumps(rest).encode()
    return struct.pack("<Q", len(head)) + head + (save(tensors) if tensors else b"")


def unpack(data: bytes, device: Any = None) -> dict[str, Any]:
    from safetensors.torch import load

    (n,) = struct.unpack("<Q", data[:8])
    out: dict[str, Any] = json.loads(data[8 : 8 + n])
    if len(data) > 8 + n:
        for k, v in load(data[8 + n :]).items():
            out[k] = v if device is None else v.to(device)
    return out


def _fn_path(fn: Callable[..., Any]) -> str:
    path = f"{fn.__module__}:{fn.__qualname__}"
    if "<" in path or not fn.__module__.startswith("landscope_service.diagnostics"):
        raise ValueError(f"Piece functions must be module-level functions of the core; got {path}.")
    return path


def _resolve(path: str) -> Callable[..., dict[str, Any]]:
    module, _, name = path.partition(":")
    if not module.startswith("landscope_service.diagnostics"):
        raise ValueError(f"Refusing to run {path}: not a function of the numerical core.")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


class _Keys:
    """``meta`` hash, ``todo`` list of indices, ``payloads`` and ``results`` hashes keyed by
    index, and one ``claim:<i>`` key with a TTL per piece a worker is running."""

    def __init__(self, job_id: str, fanout_id: str) -> None:
        base = f"ls:fan:{job_id}:{fanout_id}"
        self.meta = base + ":meta"
        self.todo = base + ":todo"
        self.payloads = base + ":payloads"
        self.results = base + ":results"
        self.claim = base + ":claim:"


class FanoutExecutor:
    """An :class:`~landscope_service.diagnostics.Executor` backed by Celery helpers."""

    def __init__(self, app: Celery, rt: JobRuntime, job_id: str, queue: str, width: int) -> None:
        self.app, self.rt, self.job_id, self.queue, self.width = app, rt, job_id, queue, width
        self.client = rt.jobs.client
        self._pop = self.client.register_script(_POP_AND_CLAIM)
        self.pieces_by_worker: dict[str, int] = {}

    def map(self, fn: Callable[..., dict[str, Any]], problem: Problem,
            payloads: Sequence[dict[str, Any]], monitor: Monitor) -> list[dict[str, Any]]:
        from celery import group

        n = len(payloads)
        if n == 0:
            return []
        fid = uuid.uuid4().hex[:12]
        k = _Keys(self.job_id, fid)
        pipe = self.client.pipeline()
        pipe.hset(k.meta, mapping={"fn": _fn_path(fn), "n": n, "open": 1})
        pipe.hset(k.payloads, mapping={str(i): pack(p) for i, p in enumerate(payloads)})
        pipe.rpush(k.todo, *range(n))
        for key in (k.meta, k.payloads, k.todo):
            pipe.expire(key, _KEY_TTL_S)
        pipe.execute()
        helpers = min(self.width, n - 1)
        if helpers > 0:
            group(self.app.signature("landscope.run_pieces", args=(self.job_id, fid),
                                     queue=self.queue) for _ in range(helpers)).apply_async()
        lease_ms = int(self.rt.settings.lease_s * 1000)
        scan_every = self.rt.settings.lease_s / 2
        last_scan = time.monotonic()
        try:
            while True:
                monitor.check()
                idx = self._pop(keys=[k.todo, k.claim], args=[self.rt.hostname, lease_ms])
                if idx is not None:
                    i = int(idx)
                    done = int(self.client.hlen(k.results))  # type: ignore[arg-type]
                    # this piece's own progress fills the slot after the pieces done so far
                    res = self._run_local(fn, problem, k, i,
                                          monitor.sub(done / n, (done + 1) / n, "pieces"))
                    pipe = self.client.pipeline()
                    pipe.hset(k.results, str(i), res)
                    pipe.expire(k.results, _KEY_TTL_S)
                    pipe.delete(k.claim + str(i))
                    pipe.execute()
                done = int(self.client.hlen(k.results))  # type: ignore[arg-type]
                monitor.report("pieces", done / n, f"{done}/{n} pieces done")
                if done == n:
                    break
                if idx is None:
                    if time.monotonic() - last_scan > scan_every:
                        self._requeue_lost(k, n)
                        last_scan = time.monotonic()
                    time.sleep(0.05)
            raws = self.client.hmget(k.results, [str(i) for i in range(n)])
            out = []
            for i, raw in enumerate(raws):  # type: ignore[arg-type]
                res = unpack(raw, problem.device)
                if "__error__" in res:
                    raise RuntimeError(f"Piece {i} failed on a helper: {res['__error__']}")
                worker = res.pop("__worker__", self.rt.hostname)
                self.pieces_by_worker[worker] = self.pieces_by_worker.get(worker, 0) + 1
                out.append(res)
            return out
        finally:
            pipe = self.client.pipeline()
            pipe.hset(k.meta, "open", 0)
            pipe.delete(k.todo, k.payloads, k.results, *(k.claim + str(i) for i in range(n)))
            pipe.execute()

    def _requeue_lost(self, k: _Keys, n: int) -> None:
        """Pieces neither done, queued nor claimed: their helper died; queue them again."""
        done = {int(x) for x in self.client.hkeys(k.results)}  # type: ignore[union-attr]
        queued = {int(x) for x in self.client.lrange(k.todo, 0, -1)}  # type: ignore[union-attr]
        for i in range(n):
            if i not in done and i not in queued and not self.client.exists(k.claim + str(i)):
                self.client.rpush(k.todo, i)

    def _run_local(self, fn: Callable[..., dict[str, Any]], problem: Problem, k: _Keys, i: int,
                   monitor: Monitor) -> bytes:
        payload = unpack(self.client.hget(k.payloads, str(i)), problem.device)  # type: ignore[arg-type]
        res = fn(problem, payload, monitor)
        return pack({**res, "__worker__": self.rt.hostname})


def make_executor_factory(app: Celery, rt: JobRuntime) -> Callable[[str, dict[str, Any]], Any]:
    def factory(job_id: str, req: dict[str, Any]) -> FanoutExecutor | None:
        if rt.settings.fanout <= 0:
            return None
        queue = "gpu" if req.get("device") == "cuda" else "cpu"
        return FanoutExecutor(app, rt, job_id, queue, rt.settings.fanout)

    return factory


_problems: dict[str, Any] = {}


def job_ended(rt: JobRuntime, job_id: str) -> bool:
    """Whether a helper's job no longer wants its pieces: cancelled, or not running (a
    passed deadline fails it; it finished or gave up)."""
    return bool(rt.jobs.cancel_requested(job_id)) or rt.jobs.status(job_id) != "running"


class HelperStop(PollingThread):
    """The hard stop of a helper task, as the parent's watchdog is of the parent.

    While a helper runs a piece, this thread polls the job every ``poll_s`` seconds. Once
    the job has ended (:func:`job_ended`) the piece stops at its next cooperative check;
    one that has not returned ``grace_s`` later (a long native call, a loop without a
    check) ends with its pool process (``rt.hard_stop``; Celery's prefork pool replaces
    it and the worker takes the next task). Where the process must not be killed (solo
    and threads pools, ``hard_stop`` None) the piece runs on until its next check.
    """

    def __init__(self, rt: JobRuntime, job_id: str, *, grace_s: float,
                 poll_s: float = 0.25) -> None:
        super().__init__("landscope-helper-stop", poll_s)
        self.rt, self.job_id, self.grace_s = rt, job_id, grace_s
        self._since: float | None = None

    def tick(self) -> bool:
        if not job_ended(self.rt, self.job_id):
            self._since = None
            return True
        now = time.monotonic()
        self._since = now if self._since is None else self._since
        if now - self._since < self.grace_s or self.rt.hard_stop is None:
            return True
        if self._done.is_set():  # the piece returned meanwhile
            return False
        log.warning("job %s ended; its piece ignored the stop for %.1f s: ending this "
                    "helper process", self.job_id, self.grace_s)
        self.rt.hard_stop()
        return False


def help_with_pieces(rt: JobRuntime, job_id: str, fanout_id: str) -> int:
    """Body of the ``landscope.run_pieces`` helper task; returns the pieces it ran."""
    from ..diagnostics import Monitor
    from .problem_factory import build_for_request

    k = _Keys(job_id, fanout_id)
    client = rt.jobs.client
    meta = {a.decode(): b.decode() for a, b in client.hgetall(k.meta).items()}  # type: ignore[union-attr]
    if meta.get("open") != "1" or rt.jobs.status(job_id) != "running":
        return 0
    doc = rt.jobs.doc(job_id)
    if doc is None:
        return 0
    fn = _resolve(meta["fn"])
    if job_id not in _problems:
        _problems.clear()
        _problems[job_id] = build_for_request(rt, doc["tenant"], doc["request"])[0]
    problem = _problems[job_id]
    pop = client.register_script(_POP_AND_CLAIM)
    lease_ms = int(rt.settings.lease_s * 1000)
    # stop at the next check when the job is cancelled, or ended otherwise (a passed
    # deadline fails it); a piece that ignores its checks is ended by HelperStop
    monitor = Monitor(should_cancel=lambda: job_ended(rt, job_id))
    count = 0
    while True:
        idx = pop(keys=[k.todo, k.claim], args=[rt.hostname, lease_ms])
        if idx is None:
            return count
        i = int(idx)
        stop = threading.Event()

        def renew(i: int = i, stop: threading.Event = stop) -> None:
            while not stop.wait(lease_ms / 4000):
                client.pexpire(k.claim + str(i), lease_ms)

        t = threading.Thread(target=renew, daemon=True)
        t.start()
        try:
            raw = client.hget(k.payloads, str(i))
            if raw is None:  # the job finished or gave up meanwhile
                return count
            try:
                with HelperStop(rt, job_id, grace_s=rt.settings.cancel_grace_s):
                    res = fn(problem, unpack(raw, problem.device), monitor)  # type: ignore[arg-type]
                data = pack({**res, "__worker__": rt.hostname})
            except Exception as e:
                if type(e).__name__ == "Cancelled":
                    return count
                log.exception("piece %d of %s failed", i, job_id)
                data = pack({"__error__": f"{type(e).__name__}: {e}"})
            if client.hget(k.meta, "open") != b"1":
                return count
            pipe = client.pipeline()
            pipe.hset(k.results, str(i), data)
            pipe.expire(k.results, _KEY_TTL_S)
            pipe.delete(k.claim + str(i))
            pipe.execute()
            count += 1
        finally:
            stop.set()
            t.join(timeout=2)
