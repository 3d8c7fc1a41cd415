"""Our own registry of jobs in Redis.

Celery reports PENDING for any id it does not know and keeps revokes of queued tasks in
worker memory only, so the truth about a job lives here: one Redis hash per job,
an index per tenant for listing, idempotency keys, leases of running jobs and worker
heartbeats. Status changes are compare-and-set Lua scripts, so a cancel and a start
that race cannot both win.

Keys:
    ls:job:<id>                 hash: doc (immutable JSON), status, progress, result, ...
    ls:tenant:<t>:jobs          zset of job ids scored by creation time (ms)
    ls:idem:<t>:<key>           idempotency record (JSON), TTL 24 h
    ls:running                  set of ids of running jobs
    ls:lease:<id>               the running attempt's token, TTL = lease
    ls:worker:<name>            heartbeat of a worker (JSON), TTL
    ls:queue_deadlines          zset of queued job ids scored by their queue deadline (s)

Statuses: ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` | ``cancelled``; a queued
job not started before its queue deadline ends ``expired`` (also final).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis

from ..metrics import RedisMetrics
from .events import MAX_EVENTS, JobEvents, event_key
from .limits import CAPS_LUA, ActiveJobCaps

__all__ = [
    "FINISHED",
    "IdempotencyConflict",
    "IdempotencyInProgress",
    "JobStore",
    "dumps_compact",
    "fingerprint",
    "iso",
    "new_job_id",
    "products_of",
]

FINISHED = ("succeeded", "failed", "cancelled", "expired")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
QUEUE_DEADLINES = "ls:queue_deadlines"


_last_id = [0, 0]


def new_job_id() -> str:
    """``job_`` + 26 Crockford base-32 characters: 48 bits of ms time, 80 random bits.

    Monotonic within a process (a ULID): ids made in the same millisecond increase.
    """
    ms = int(time.time() * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    if ms <= _last_id[0]:
        ms, rand = _last_id[0], (_last_id[1] + 1) % (1 << 80)
    _last_id[:] = [ms, rand]
    value = (ms << 80) | rand
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "job_" + "".join(reversed(chars))


def iso(ts: float | None) -> str | None:
    """RFC 3339 UTC with a Z, microseconds (``2026-12-02T12:24:01.103296Z``)."""
    if ts is None:
        return None
    # isoformat is C code (strftime parses its format every call); the 6 characters cut
    # are the "+00:00" of the UTC offset.
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def fingerprint(request: dict[str, Any]) -> str:
    """A stable hash of a request (key order does not matter)."""
    blob = json.dumps(request, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def products_of(result: dict[str, Any]) -> int | None:
    """Curvature products a result reports (``products`` at its top or in ``cost``)."""
    for holder in (result, result.get("cost") or {}, result.get("budget") or {}):
        if isinstance(holder, dict):
            value = holder.get("products")
            if isinstance(value, dict):  # by part, e.g. hessian_spectrum's {"total": ...}
                value = value.get("total")
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


# What every new job's hash holds first (encoded once, not per submission).
_QUEUED_PROGRESS = json.dumps({"stage": "queued", "fraction": 0.0, "message": ""})
_QUEUED_EVENT = json.dumps({"status": "queued"})


def dumps_compact(value: Any) -> str:
    """Compact JSON of a request-sized document: orjson (several times faster than the
    standard encoder, read back by ``json.loads`` alike), the standard encoder for what
    orjson refuses (e.g. an integer wider than 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value)


class IdempotencyConflict(Exception):  # noqa: N818
    """The key was used with a different request."""


class IdempotencyInProgress(Exception):  # noqa: N818
    """The first request with this key is still being created."""


# status transition: KEYS[1]=job hash; ARGV[1]=JSON list of allowed current statuses,
# ARGV[2]=new status, then field/value pairs to set. Returns the previous status or false.
_TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return false end
local allowed = cjson.decode(ARGV[1])
local ok = false
for _, s in ipairs(allowed) do if s == cur then ok = true end end
if not ok then return false end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local tenant = redis.call('HGET', KEYS[1], 'tenant')
if tenant then  -- the tenant's cap sets (jobs/limits.py) follow the job
  local id, new = string.sub(KEYS[1], 8), ARGV[2]
  if cur == 'running' and new ~= 'running' then
    redis.call('ZREM', 'ls:tenant:' .. tenant .. ':running', id)
  end
  if new == 'succeeded' or new == 'failed' or new == 'cancelled' or new == 'expired' then
    redis.call('ZREM', 'ls:tenant:' .. tenant .. ':active', id)
  end
end
return cur
"""

# start an attempt: KEYS[1]=job, KEYS[2]=lease, KEYS[3]=running set, KEYS[4]=queue deadlines;
# ARGV: token, lease ms, now, worker, max_attempts, job id. Returns {code, attempts}: code
# 'started', 'busy' (another live attempt holds the lease), 'finished', 'cancelled',
# 'expired' (still queued past its queue deadline), 'exhausted', 'missing'.
_START = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing', 0} end
if st == 'succeeded' or st == 'failed' or st == 'cancelled' or st == 'expired' then
  return {'finished', 0}
end
if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then return {'cancelled', 0} end
local qd = redis.call('HGET', KEYS[1], 'queue_deadline_at')
if st == 'queued' and qd and qd ~= '' and tonumber(ARGV[3]) > tonumber(qd) then
  return {'expired', 0}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'busy', 0} end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') + 1
if attempts > tonumber(ARGV[5]) then return {'exhausted', attempts - 1} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[6])
redis.call('ZREM', KEYS[4], ARGV[6])
redis.call('HSET', KEYS[1], 'status', 'running', 'attempts', attempts, 'worker', ARGV[4],
           'started_at', ARGV[3])
local tenant = redis.call('HGET', KEYS[1], 'tenant')
if tenant then  -- counted by the tenant's running cap (jobs/limits.py)
  redis.call('ZADD', 'ls:tenant:' .. tenant .. ':running', ARGV[3], ARGV[6])
end
return {'started', attempts}
"""

# renew a lease only if we still hold it. KEYS[1]=lease; ARGV: token, ms
# A job's creation in one round trip. KEYS: job hash, tenant index, idempotency key (unused
# when ARGV[1] is '0'), submissions counter hash (unused when ARGV[7] is ''), event stream,
# queue deadlines, the Celery queue list (unused when ARGV[13] is ''). ARGV: 1 '1' with an
# idempotency key, 2 its record, 3 its TTL s, 4 job id, 5 index score (ms), 6 queue deadline
# ('' for none), 7 kind ('' to count nothing), 8 event type ('' to record none: the caller
# records it), 9 event timestamp, 10 event data, 11 stream cap, 12 stream TTL s, 13 the Celery
# message to LPUSH ('' for none), 14 the queued cap, 15 the running cap (both '0': no caps),
# 16 the caps' clock (ms), 17 their grace (ms), 18.. the job hash's field/value pairs; KEYS 8
# and 9: the tenant's active and running sets (jobs/limits.py, unused without caps).
# Returns {1} when created (the message pushed after the record), {0, record} when the
# idempotency key is taken, {2, code, queued, running} when a cap refuses (nothing written
# in either case). A replay is found before the caps are counted.
_CREATE = CAPS_LUA + """
if ARGV[1] == '1' then
  local old = redis.call('GET', KEYS[3])
  if old then return {0, old} end
end
local qcap, rcap = tonumber(ARGV[14]), tonumber(ARGV[15])
if qcap > 0 or rcap > 0 then
  local code, queued, running = caps_check(KEYS[8], KEYS[9], tonumber(ARGV[16]),
    tonumber(ARGV[17]), qcap, rcap, 'ls:job:')
  if code ~= 'ok' then return {2, code, queued, running} end
  redis.call('ZADD', KEYS[8], ARGV[16], ARGV[4])
end
if ARGV[1] == '1' then redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3]) end
redis.call('HSET', KEYS[1], unpack(ARGV, 18))
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[6], ARGV[6], ARGV[4]) end
if ARGV[7] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[7], 1) end
if ARGV[8] ~= '' then
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[11], '*', 'type', ARGV[8],
             'timestamp', ARGV[9], 'data', ARGV[10])
  redis.call('EXPIRE', KEYS[5], ARGV[12])
end
if ARGV[13] ~= '' then redis.call('LPUSH', KEYS[7], ARGV[13]) end
return {1}
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]); return 1
end
return 0
"""


@dataclass
class JobStore:
    """Job records in Redis. All timestamps are UNIX seconds (floats)."""

    client: redis.Redis
    result_ttl_s: int = 7 * 24 * 3600
    idempotency_ttl_s: int = 24 * 3600
    lease_s: float = 20.0
    metrics: RedisMetrics | None = None

    def __post_init__(self) -> None:
        if self.metrics is None:
            self.metrics = RedisMetrics(self.client)
        self._transition = self.client.register_script(_TRANSITION)
        self._start = self.client.register_script(_START)
        self._renew = self.client.register_script(_RENEW)
        self._create = self.client.register_script(_CREATE)
        # each transition appends to the job's event stream (and queues its webhooks)
        self.events = JobEvents(self.client, ttl_s=self.result_ttl_s, render=self.get)

    # ------------------------------------------------------------------ keys
    @staticmethod
    def _job(job_id: str) -> str:
        return f"ls:job:{job_id}"

    @staticmethod
    def _index(tenant: str) -> str:
        return f"ls:tenant:{tenant}:jobs"

    # ------------------------------------------------------------------ creation
    @staticmethod
    def request_fingerprint(kind: str, request: dict[str, Any], metadata: dict[str, str]) -> str:
        """What an Idempotency-Key is bound to: kind, request and metadata."""
        return fingerprint({"request": request, "metadata": metadata, "kind": kind})

    def create(
        self,
        *,
        tenant: str,
        kind: str,
        request: dict[str, Any],
        metadata: dict[str, str],
        queue: str,
        idempotency_key: str | None = None,
        estimate: dict[str, Any] | None = None,
        max_runtime_s: float | None = None,
        queue_timeout_s: float | None = None,
        job_id: str | None = None,
        fields: dict[str, str] | None = None,
        push: tuple[str, bytes | str] | None = None,
        caps: ActiveJobCaps | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Create a queued job; return ``(job, created)``.

        ``job_id`` (default: a new one) and extra hash ``fields`` (e.g. the ``task_id`` the
        job will be sent with) let the caller know them before the job exists. Creation is
        one round trip (one Lua script: idempotency key, record, index, counter, event).
        ``push`` (a list key and a payload: the job's Celery message) is LPUSHed by that same
        script once the job exists, and only when it is created.

        ``estimate`` (the submit-time cost estimate) is shown in the job; a job running
        longer than ``max_runtime_s`` is failed with ``deadline_exceeded`` by its worker;
        one still queued ``queue_timeout_s`` after creation ends ``expired``.

        With an idempotency key (Stripe's rules): the same key and the same request give
        back the first job (``created=False``); a different request raises
        :class:`IdempotencyConflict`; a first request still being created raises
        :class:`IdempotencyInProgress`.

        ``caps``: the tenant's queued and running caps, checked by the same script after
        the idempotency key (a replay is never refused) and before anything is written;
        a refusal raises its :class:`TooManyRequestsError` (429).
        """
        fp = self.request_fingerprint(kind, request, metadata)
        job_id = job_id or new_job_id()
        now = time.time()
        doc = {
            "id": job_id,
            "tenant": tenant,
            "kind": kind,
            "request": request,
            "metadata": metadata,
            "queue": queue,
            "created_at": now,
        }
        mapping: dict[str, Any] = {
            "doc": dumps_compact(doc),
            "status": "queued",
            "tenant": tenant,  # the status scripts keep the tenant's cap sets with it
            "progress": _QUEUED_PROGRESS,
            "attempts": 0,
            "cancel_requested": "0",
            "expires_at": now + self.result_ttl_s,
        }
        if estimate is not None:
            mapping["estimate"] = dumps_compact(estimate)
        if max_runtime_s:
            mapping["max_runtime_s"] = float(max_runtime_s)
        deadline = ""
        if queue_timeout_s:
            mapping["queue_deadline_at"] = now + float(queue_timeout_s)
            deadline = repr(now + float(queue_timeout_s))
        if request.get("webhook"):
            mapping["webhook"] = json.dumps({
                "url": request["webhook"], "tenant": tenant,
                "events": request.get("webhook_events") or None})
        mapping.update(fields or {})
        # A job with a webhook has its queued event recorded by JobEvents (which queues the
        # delivery); every other job's event is appended by the creation script itself.
        inline_event = not request.get("webhook")
        counted = self.metrics.submitted_key if self.metrics is not None else ""
        flat: list[Any] = []
        for k, v in mapping.items():
            flat += [k, repr(v) if isinstance(v, float) else v]
        with_caps = caps is not None and caps.enabled
        capped = ([caps.max_queued, caps.max_running, caps.now_ms(), caps.grace_ms]
                  if caps is not None and with_caps else [0, 0, 0, 0])
        reply = self._create(
            keys=[self._job(job_id), self._index(tenant),
                  self._idem(tenant, idempotency_key) if idempotency_key is not None
                  else "ls:idem:-", counted or "ls:m:-", event_key(job_id), QUEUE_DEADLINES,
                  push[0] if push is not None else "ls:push:-",
                  caps.key(tenant) if with_caps else "ls:caps:-",
                  caps.running_key(tenant) if with_caps else "ls:caps:-"],
            args=["1" if idempotency_key is not None else "0",
                  json.dumps({"fingerprint": fp, "job_id": job_id}), self.idempotency_ttl_s,
                  job_id, int(now * 1000), deadline, kind if counted else "",
                  "job.queued" if inline_event else "", iso(now) or "",
                  _QUEUED_EVENT, MAX_EVENTS, self.events.ttl_s,
                  push[1] if push is not None else "", *capped, *flat])
        if reply[0] == 2:
            assert caps is not None
            caps.check(reply[1], int(reply[2]), int(reply[3]))
        if not reply[0]:
            assert idempotency_key is not None
            record = json.loads(reply[1])
            if record["fingerprint"] != fp:
                raise IdempotencyConflict(idempotency_key)
            if record["job_id"] is None:  # a pending record of an older version
                raise IdempotencyInProgress(idempotency_key)
            job = self.get(record["job_id"], tenant=tenant)
            if job is None:  # expired job: the key outlived it
                raise IdempotencyConflict(idempotency_key)
            return job, False
        if not inline_event:
            self.events.record(job_id, "queued", {"status": "queued"})
        raw = {k: str(v) for k, v in mapping.items()}
        return self._render(doc, raw), True

    @staticmethod
    def _idem(tenant: str, idempotency_key: str) -> str:
        return f"ls:idem:{tenant}:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"

    def set_task_id(self, job_id: str, task_id: str) -> None:
        self.client.hset(self._job(job_id), "task_id", task_id)

    # ------------------------------------------------------------------ reading
    def raw(self, job_id: str) -> dict[str, str] | None:
        data = self.client.hgetall(self._job(job_id))
        if not data:
            return None
        return {k.decode(): v.decode() for k, v in data.items()}  # type: ignore[union-attr]

    def get(self, job_id: str, *, tenant: str | None = None) -> dict[str, Any] | None:
        """The job as the API shows it, or None (also for another tenant's job)."""
        if not job_id.startswith("job_") or len(job_id) > 64:
            return None
        raw = self.raw(job_id)
        if raw is None or "doc" not in raw:
            return None
        doc = json.loads(raw["doc"])
        if tenant is not None and doc["tenant"] != tenant:
            return None
        return self._render(doc, raw)

    @staticmethod
    def _render(doc: dict[str, Any], raw: dict[str, str]) -> dict[str, Any]:
        def num(name: str) -> float | None:
            value = raw.get(name)
            return float(value) if value else None

        return {
            "id": doc["id"],
            "kind": doc["kind"],
            "status": raw["status"],
            "progress": json.loads(raw["progress"]),
            "created_at": iso(doc["created_at"]),
            "started_at": iso(num("started_at")),
            "finished_at": iso(num("finished_at")),
            "expires_at": iso(num("expires_at")),
            "metadata": doc["metadata"],
            "request": doc["request"],
            "result": json.loads(raw["result"]) if raw.get("result") else None,
            "error": json.loads(raw["error"]) if raw.get("error") else None,
            "artifacts": json.loads(raw["artifacts"]) if raw.get("artifacts") else [],
            "cancel_requested": raw.get("cancel_requested") == "1",
            "attempts": int(raw.get("attempts", "0")),
            "execution": json.loads(raw["execution"]) if raw.get("execution") else None,
            "estimate": json.loads(raw["estimate"]) if raw.get("estimate") else None,
            "limits": {"max_runtime_s": num("max_runtime_s"),
                       "queue_deadline_at": iso(num("queue_deadline_at"))},
        }

    def doc(self, job_id: str) -> dict[str, Any] | None:
        raw = self.client.hget(self._job(job_id), "doc")
        return None if raw is None else json.loads(raw)  # type: ignore[arg-type]

    def status(self, job_id: str) -> str | None:
        raw = self.client.hget(self._job(job_id), "status")
        return None if raw is None else raw.decode()  # type: ignore[union-attr]

    def list(
        self,
        *,
        tenant: str,
        status: str | None = None,
        kind: str | None = None,
        metadata: dict[str, str] | None = None,
        limit: int = 50,
        cursor: tuple[int, str] | None = None,
    ) -> tuple[list[dict[str, Any]], tuple[int, str] | None]:
        """Newest first. ``cursor`` is ``(score, id)`` of the last item of the previous page."""
        index = self._index(tenant)
        out: list[dict[str, Any]] = []
        max_score: str = "+inf" if cursor is None else str(cursor[0])
        last: tuple[int, str] | None = None
        chunk = max(limit * 4, 64)
        offset = 0
        while len(out) < limit:
            rows = self.client.zrevrangebyscore(
                index, max_score, "-inf", start=offset, num=chunk, withscores=True
            )
            if not rows:
                return out, None
            offset += len(rows)
            for member, score in rows:  # type: ignore[union-attr]
                job_id = member.decode()
                sc = int(score)
                if cursor is not None and (sc, job_id) >= cursor:
                    continue  # already on an earlier page (ties ordered by id, descending)
                job = self.get(job_id)
                if job is None:  # expired: drop it from the index
                    self.client.zrem(index, job_id)
                    offset -= 1
                    continue
                last = (sc, job_id)
                if status and job["status"] != status:
                    continue
                if kind and job["kind"] != kind:
                    continue
                if metadata and any(job["metadata"].get(k) != v for k, v in metadata.items()):
                    continue
                out.append(job)
                if len(out) == limit:
                    return out, last
        return out, last

    # ------------------------------------------------------------------ transitions
    def _cas(self, job_id: str, allowed: tuple[str, ...], new: str, **fields: Any) -> str | None:
        args: list[Any] = [json.dumps(list(allowed)), new]
        for k, v in fields.items():
            args += [k, v]
        prev = self._transition(keys=[self._job(job_id)], args=args)
        return None if prev is None else prev.decode()  # type: ignore[union-attr]

    def start(self, job_id: str, *, worker: str, max_attempts: int) -> tuple[str, int, str]:
        """Claim a run. Returns ``(code, attempts, token)``; see ``_START``."""
        token = secrets.token_hex(8)
        code, attempts = self._start(
            keys=[self._job(job_id), f"ls:lease:{job_id}", "ls:running", QUEUE_DEADLINES],
            args=[token, int(self.lease_s * 1000), time.time(), worker, max_attempts, job_id],
        )
        if code == b"started":
            self.events.record(job_id, "started", {"status": "running",
                                                   "attempt": int(attempts), "worker": worker})
        return code.decode(), int(attempts), token

    def renew(self, job_id: str, token: str) -> bool:
        return bool(self._renew(keys=[f"ls:lease:{job_id}"],
                                args=[token, int(self.lease_s * 1000)]))

    def progress(self, job_id: str, stage: str, fraction: float, message: str = "") -> None:
        progress = {"stage": stage, "fraction": round(fraction, 6), "message": message}
        self.client.hset(self._job(job_id), "progress", json.dumps(progress))
        self.events.progress(job_id, progress)  # at most one event a second

    def _finish(self, job_id: str, status: str, allowed: tuple[str, ...], **fields: Any) -> bool:
        now = time.time()
        prev = self._cas(job_id, allowed, status, finished_at=now,
                         expires_at=now + self.result_ttl_s, **fields)
        if prev is None:
            return False
        pipe = self.client.pipeline()
        pipe.expire(self._job(job_id), self.result_ttl_s)
        pipe.srem("ls:running", job_id)
        pipe.zrem(QUEUE_DEADLINES, job_id)
        pipe.delete(f"ls:lease:{job_id}")
        pipe.publish(self.events_channel(job_id), status)
        pipe.execute()
        error = fields.get("error")
        self.events.record(job_id, status, {"status": status,
                                            "error": json.loads(error) if error else None})
        self._record_finish(job_id, status, now, fields.get("result"))
        return True

    def _record_finish(self, job_id: str, status: str, now: float, result: str | None) -> None:
        if self.metrics is None:
            return
        doc = self.doc(job_id) or {}
        started = self.client.hget(self._job(job_id), "started_at")
        seconds = now - float(started) if started else None
        products = None
        if result:
            products = products_of(json.loads(result))
        self.metrics.job_finished(str(doc.get("kind", "unknown")), status, seconds, products)

    @staticmethod
    def events_channel(job_id: str) -> str:
        return f"ls:events:{job_id}"

    def wait_finished(self, job_id: str, timeout_s: float) -> str | None:
        """Block up to ``timeout_s`` until the job is finished; return its status.

        Subscribes to the job's channel first, then reads the status, so a finish that
        lands between the two is not missed.
        """
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.events_channel(job_id))
            deadline = time.monotonic() + timeout_s
            status = self.status(job_id)
            while status not in FINISHED and status is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                pubsub.get_message(timeout=min(remaining, 1.0))
                status = self.status(job_id)
            return status
        finally:
            pubsub.close()

    def succeed(self, job_id: str, result: dict[str, Any], artifacts: list[dict[str, Any]],
                execution: dict[str, Any] | None = None) -> bool:
        return self._finish(
            job_id, "succeeded", ("running",),
            result=json.dumps(result, allow_nan=False), artifacts=json.dumps(artifacts),
            progress=json.dumps({"stage": "done", "fraction": 1.0, "message": ""}),
            execution=json.dumps(execution or {}),
        )

    def fail(self, job_id: str, code: str, message: str,
             allowed: tuple[str, ...] = ("queued", "running")) -> bool:
        return self._finish(job_id, "failed", allowed,
                            error=json.dumps({"code": code, "message": message}))

    def mark_cancelled(self, job_id: str, allowed: tuple[str, ...] = ("queued", "running")) -> bool:
        return self._finish(
            job_id, "cancelled", allowed,
            error=json.dumps({"code": "cancelled",
                              "message": "Cancelled at the caller's request."}),
        )

    def expire(self, job_id: str) -> bool:
        """A queued job past its queue deadline ends ``expired``; True if it did now."""
        raw = self.client.hget(self._job(job_id), "queue_deadline_at")
        deadline = float(raw) if raw else None
        return self._finish(
            job_id, "expired", ("queued",),
            error=json.dumps({"code": "expired", "message": (
                "The job was not started before its queue deadline"
                + (f" ({iso(deadline)})" if deadline else "")
                + "; no worker was free in time. Submit again, or raise queue_timeout_s "
                "(or LANDSCOPE_QUEUE_TIMEOUT_S).")}),
        )

    def expire_overdue(self, now: float | None = None, limit: int = 500) -> list[str]:
        """Expire every queued job whose queue deadline has passed; returns their ids."""
        now = time.time() if now is None else now
        ids = self.client.zrangebyscore(QUEUE_DEADLINES, "-inf", now, start=0, num=limit)
        out = []
        for member in ids:  # type: ignore[union-attr]
            job_id = member.decode()
            if self.expire(job_id):
                out.append(job_id)
            else:  # started, finished or gone meanwhile
                self.client.zrem(QUEUE_DEADLINES, job_id)
        return out

    def request_cancel(self, job_id: str) -> str | None:
        """Cancel: a queued job becomes cancelled at once; a running one is flagged.

        Returns the status after the call, or None if the job does not exist.
        """
        if not self.client.exists(self._job(job_id)):
            return None
        self.client.hset(self._job(job_id), mapping={"cancel_requested": "1",
                                                     "cancel_requested_at": time.time()})
        if self.mark_cancelled(job_id, allowed=("queued",)):
            return "cancelled"
        return self.status(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        return self.client.hget(self._job(job_id), "cancel_requested") == b"1"

    def set_pid(self, job_id: str, pid: int) -> None:
        """Record the process that runs the job's attempt (the worker's fallback stop)."""
        self.client.hset(self._job(job_id), "pid", pid)

    def running_on(self, worker: str) -> list[tuple[str, dict[str, str]]]:
        """``(job_id, raw record)`` of the running jobs whose attempt ``worker`` holds."""
        out = []
        for member in self.client.smembers("ls:running"):  # type: ignore[union-attr]
            job_id = member.decode()
            raw = self.raw(job_id)
            if raw and raw.get("status") == "running" and raw.get("worker") == worker:
                out.append((job_id, raw))
        return out

    def requeue(self, job_id: str) -> bool:
        """A lost running attempt goes back to queued (the caller re-sends the task)."""
        ok = self._cas(job_id, ("running",), "queued", worker="") is not None
        self.client.srem("ls:running", job_id)
        if ok:
            self.events.record(job_id, "requeued", {"status": "queued"})
        return ok

    # ------------------------------------------------------------------ liveness
    def lost_jobs(self) -> Iterator[str]:
        """Running jobs whose lease expired: their worker died or hangs."""
        for member in self.client.smembers("ls:running"):  # type: ignore[union-attr]
            job_id = member.decode()
            if self.client.exists(f"ls:lease:{job_id}"):
                continue
            if self.status(job_id) != "running":
                self.client.srem("ls:running", job_id)
                continue
            yield job_id

    def record_rate(self, worker: str, *, products: int, seconds: float, units: int,
                    keep: int = 20) -> None:
        """Remember one finished job's seconds per curvature product on ``worker``.

        ``units`` is ``N * W`` of the job (``W``: forward multiply-adds per sample,
        ``jobs/estimate.py: work_per_sample``; a product's time grows with both); the
        worker's heartbeat carries its last ``keep`` samples, which the submit-time cost
        estimate reads (:mod:`landscope_service.jobs.estimate`).
        """
        if products <= 0 or seconds <= 0 or units <= 0:
            return
        key = f"ls:rates:{worker}"
        sample = json.dumps({"units": int(units), "seconds_per_product": seconds / products})
        pipe = self.client.pipeline()
        pipe.lpush(key, sample)
        pipe.ltrim(key, 0, keep - 1)
        pipe.expire(key, 7 * 24 * 3600)
        pipe.execute()

    def product_rates(self, worker: str) -> list[dict[str, float]]:
        """The samples :meth:`record_rate` kept for ``worker``, newest first."""
        raw = self.client.lrange(f"ls:rates:{worker}", 0, -1)
        return [json.loads(r) for r in raw]  # type: ignore[union-attr]

    def heartbeat(self, name: str, info: dict[str, Any], ttl_s: float) -> None:
        info = {**info, "name": name, "last_seen": iso(time.time())}
        self.client.set(f"ls:worker:{name}", json.dumps(info), px=int(ttl_s * 1000))

    def drop_worker(self, name: str) -> None:
        self.client.delete(f"ls:worker:{name}")

    def workers(self) -> list[dict[str, Any]]:
        out = []
        for key in self.client.scan_iter(match="ls:worker:*", count=100):
            raw = self.client.get(key)
            if raw is not None:
                out.append(json.loads(raw))  # type: ignore[arg-type]
        return sorted(out, key=lambda w: w["name"])
