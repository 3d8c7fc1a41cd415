"""Per-tenant caps that keep one client from taking the service: concurrent long polls,
queued jobs and running jobs. Each refusal is a :class:`TooManyRequestsError` (429 with
``Retry-After``); each cap is a setting, 0 turns it off.

Counts live in Redis, so they hold across API processes and hosts, and every check is
one Lua script, so concurrent requests of one tenant cannot overshoot a cap. A count
never leaks when a process dies: a wait slot carries its own expiry; a job leaves its
tenant's active and running sets through the job store's status scripts, and a set that
reaches its cap is walked and pruned of anything stale before a refusal. A submit under
the caps costs two set sizes, not a read of every active job (at 1,000 queued jobs that
read was about 1 ms of Redis time per submit). The clock is injected (UNIX seconds), so
tests move time instead of sleeping.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from .errors import TooManyRequestsError

__all__ = ["ActiveJobCaps", "WaitSlots"]

# KEYS[1]=zset of slots; ARGV: now ms, expiry ms, cap, token. 1 if taken, 0 if full.
_TAKE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
local ttl = tonumber(ARGV[2]) - tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""

# The cap rule, one Lua function shared by the reserve script here and the job store's
# creation script (jobs/store.py), which checks the caps in the round trip that creates the
# job. active: zset of a tenant's active jobs (queued or running, and ids reserved for jobs
# being created), scored by the time they were added (ms); running: zset of its running
# jobs. The status scripts of the job store keep both sets (a job leaves the active set when
# it finishes, the running set when it stops running), so their sizes are upper bounds of
# the counts and the common case is two ZCARDs. Only a set as large as its cap is walked, to
# count exactly and drop what is stale (a job that ended without the scripts, e.g. one made
# before the sets existed): in the active set a member whose job is queued counts as queued;
# one with no job yet counts while it is younger than the grace (its job is being created),
# and is dropped after; running ones are the running set's; finished ones are dropped.
# Returns code, queued, running (-1: not counted); code is 'ok', 'queued' or 'running' (the
# cap reached).
CAPS_LUA = """
local function caps_check(active, running, now, grace, qcap, rcap, prefix)
  local queued, nrun = -1, -1
  if rcap > 0 and redis.call('ZCARD', running) >= rcap then
    nrun = 0
    for _, m in ipairs(redis.call('ZRANGE', running, 0, -1)) do
      if redis.call('HGET', prefix .. m, 'status') == 'running' then nrun = nrun + 1
      else redis.call('ZREM', running, m) end
    end
  end
  if qcap > 0 and redis.call('ZCARD', active) >= qcap then
    queued = 0
    local members = redis.call('ZRANGE', active, 0, -1, 'WITHSCORES')
    for i = 1, #members, 2 do
      local m = members[i]
      local st = redis.call('HGET', prefix .. m, 'status')
      if st == 'queued' then queued = queued + 1
      elseif st == 'running' then
      elseif (not st) and tonumber(members[i + 1]) > now - grace then queued = queued + 1
      else redis.call('ZREM', active, m) end
    end
  end
  if qcap > 0 and queued >= qcap then return 'queued', queued, nrun end
  if rcap > 0 and nrun >= rcap then return 'running', queued, nrun end
  return 'ok', queued, nrun
end
"""

# KEYS: the tenant's active and running sets. ARGV: now ms, queued cap, running cap, the new
# job's id, job key prefix, grace ms. Returns {code, queued, running}; 'ok' adds the id.
_RESERVE = CAPS_LUA + """
local code, queued, running = caps_check(KEYS[1], KEYS[2], tonumber(ARGV[1]),
  tonumber(ARGV[6]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[5])
if code == 'ok' then redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4]) end
return {code, queued, running}
"""


@dataclass
class WaitSlots:
    """At most ``cap`` concurrent long polls per tenant (0: no cap)."""

    client: redis.Redis
    cap: int
    retry_after_s: int = 1
    clock: Callable[[], float] = field(default=time.time)

    def __post_init__(self) -> None:
        self._take = self.client.register_script(_TAKE_SLOT)

    @staticmethod
    def key(tenant: str) -> str:
        return f"ls:waits:{tenant}"

    @contextmanager
    def hold(self, tenant: str, seconds: float) -> Iterator[None]:
        """Hold one of the tenant's wait slots for at most ``seconds`` (plus a margin).

        Raises :class:`TooManyRequestsError` when all are taken.
        """
        if self.cap <= 0:
            yield
            return
        token = secrets.token_hex(8)
        now_ms = int(self.clock() * 1000)
        expiry_ms = now_ms + int((seconds + 30) * 1000)  # a dead process frees it by then
        if not self._take(keys=[self.key(tenant)], args=[now_ms, expiry_ms, self.cap, token]):
            raise TooManyRequestsError(
                f"This API key already holds {self.cap} long polls (wait=); poll without "
                "wait, or wait for one of them to return.",
                code="too_many_waits", retry_after=self.retry_after_s)
        try:
            yield
        finally:
            self.client.zrem(self.key(tenant), token)


@dataclass
class ActiveJobCaps:
    """At most ``max_queued`` queued and ``max_running`` running jobs per tenant at submit.

    :meth:`reserve` counts the tenant's jobs and, under the caps, adds the new job's id
    (chosen before the job is created), so concurrent submits cannot overshoot; a job
    that is then not created is dropped by :meth:`release`, or after ``grace_s``. The
    counts are the sizes of the tenant's active and running sets, which the job store's
    status scripts keep; a set is walked (exact count, stale members dropped) only when
    its size reaches its cap.
    """

    client: redis.Redis
    max_queued: int
    max_running: int
    retry_after_s: int = 5
    grace_s: float = 60.0
    clock: Callable[[], float] = field(default=time.time)

    def __post_init__(self) -> None:
        self._reserve = self.client.register_script(_RESERVE)

    @property
    def enabled(self) -> bool:
        return self.max_queued > 0 or self.max_running > 0

    @staticmethod
    def key(tenant: str) -> str:
        return f"ls:tenant:{tenant}:active"

    @staticmethod
    def running_key(tenant: str) -> str:
        """The tenant's running jobs (added by the job store's start script)."""
        return f"ls:tenant:{tenant}:running"

    def reserve(self, tenant: str, job_id: str) -> None:
        """Count ``job_id`` among the tenant's jobs; 429 when a cap is reached.

        The submit path does not call this: the job store's ``create`` checks the same
        rule in the round trip that creates the job (``caps=``).
        """
        if not self.enabled:
            return
        code, queued, running = self._reserve(
            keys=[self.key(tenant), self.running_key(tenant)],
            args=[self.now_ms(), self.max_queued, self.max_running, job_id, "ls:job:",
                  self.grace_ms])
        self.check(code, queued, running)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    @property
    def grace_ms(self) -> int:
        return int(self.grace_s * 1000)

    def check(self, code: Any, queued: int, running: int) -> None:
        """Raise the 429 of a refusal by the cap rule (``code`` 'queued' or 'running')."""
        code = code.decode() if isinstance(code, bytes) else str(code)
        if code == "queued":
            raise TooManyRequestsError(
                f"This API key has {queued} queued jobs (LANDSCOPE_MAX_QUEUED_PER_TENANT="
                f"{self.max_queued}); wait for some to start or cancel some, then retry.",
                code="too_many_queued", retry_after=self.retry_after_s)
        if code == "running":
            raise TooManyRequestsError(
                f"This API key has {running} running jobs (LANDSCOPE_MAX_RUNNING_PER_TENANT="
                f"{self.max_running}); wait for one to finish or cancel one, then retry.",
                code="too_many_running", retry_after=self.retry_after_s)

    def release(self, tenant: str, job_id: str) -> None:
        """Drop a reserved id whose job was not created."""
        if self.enabled:
            self.client.zrem(self.key(tenant), job_id)
