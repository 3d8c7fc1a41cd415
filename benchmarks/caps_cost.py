"""Redis time of the per-tenant cap check against the number of the tenant's active jobs.

For 10, 100 and 1,000 queued jobs of one tenant (made through ``JobStore.create``, each
reserved first as a capped submit did), 200 more ``ActiveJobCaps.reserve`` calls (each
released again) are timed by Redis itself (``INFO commandstats``: microseconds per
EVALSHA). The caps are set above every count, so no call is refused. The API is the same
in earlier versions, so the script runs against an older checkout too:

    .venv/bin/python benchmarks/caps_cost.py
    PYTHONPATH=<checkout of 1f72744>/service .venv/bin/python benchmarks/caps_cost.py

Never run by ``make test``.
"""

from __future__ import annotations

import subprocess
import tempfile
import time

import redis

from landscope_service.jobs.limits import ActiveJobCaps
from landscope_service.jobs.store import JobStore
from landscope_service.local import find_redis_server, free_port


def main() -> None:
    port = free_port()
    server = subprocess.Popen([find_redis_server(), "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no",
                               "--dir", tempfile.mkdtemp()], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        print("| active jobs | reserve script, Redis time per call |\n|---|---|")
        for n in (10, 100, 1000):
            client.flushall()
            store = JobStore(client)
            caps = ActiveJobCaps(client, max_queued=1_000_000, max_running=1_000_000)
            for i in range(n):
                caps.reserve("t", f"job_{i:06d}")
                store.create(tenant="t", kind="evaluate", request={}, metadata={},
                             queue="cpu", job_id=f"job_{i:06d}")
            client.config_resetstat()
            for i in range(200):
                caps.reserve("t", f"job_x{i}")
                caps.release("t", f"job_x{i}")
            usec = client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]
            print(f"| {n:,} | {usec:.1f} us |", flush=True)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
