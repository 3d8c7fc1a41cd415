"""Jobs lost over repeated kill -9 of Redis while clients keep submitting.

The local stack (its Redis with the AOF settings of ``LOCAL_REDIS_ARGS``, or with
``--compose`` the Redis command of deploy/compose.yaml) runs one worker; ``--clients``
SDK clients submit tiny ``evaluate`` jobs without pause, each with its own
``Idempotency-Key`` (so a submission retried across an outage is still one job). Every
``--period`` seconds Redis gets SIGKILL; the stack restarts it. After ``--cycles`` kills
the clients stop, every job the API acknowledged (202) is looked up, and all of them
must finish.

Reported: acknowledged jobs, jobs lost (acknowledged, then 404), duplicates (more job
records than acknowledged keys; or a job run more than once), jobs acknowledged within
the last second before a kill and lost (allowed by ``appendfsync everysec`` only for a
machine crash, not for a killed process), submissions refused during the outages
(503/connection errors, retried by the SDK), and each restart's time to answer again.

    .venv/bin/python benchmarks/redis_kill_cycles.py [--cycles 10] [--period 2] [--compose]

Results are appended to benchmarks/results/redis_kill_cycles.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import threading
import time
from pathlib import Path

import redis
import yaml

import landscope
from landscope_service.local import LOCAL_REDIS_ARGS, LocalStack

REQUEST = {
    "kind": "evaluate",
    "model": {"architecture": {"type": "mlp", "input_dim": 3, "hidden": [8],
                               "output_dim": 1, "activation": "tanh", "bias": True},
              "init_seed": 0},
    "data": {"inline": {"x": [[0.1, 0.2, 0.3], [0.0, 1.0, -1.0]], "y": [[1.0], [0.0]]}},
    "loss": "mse",
}
COMPOSE = Path(__file__).resolve().parents[1] / "deploy" / "compose.yaml"


def compose_redis_args() -> tuple[str, ...]:
    command = yaml.safe_load(COMPOSE.read_text())["services"]["redis"]["command"]
    return tuple(re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(a)) for a in command[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=10)
    p.add_argument("--period", type=float, default=2.0, help="seconds between kills")
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--compose", action="store_true", help="deploy/compose.yaml's Redis flags")
    p.add_argument("--wait", type=float, default=120, help="seconds to wait for each job")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                        "redis_kill_cycles.md"))
    args = p.parse_args()
    redis_args = compose_redis_args() if args.compose else LOCAL_REDIS_ARGS

    acked: dict[str, tuple[str, float]] = {}  # idempotency key -> (job id, ack time)
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    with LocalStack(workers=1, concurrency=1, redis_args=redis_args,
                    env={"LANDSCOPE_LOG_LEVEL": "WARNING"}) as stack:
        def submitter(c: int) -> None:
            with landscope.Client(stack.url, api_key=stack.api_key, timeout=10,
                                  max_retries=20) as client:
                i = 0
                while not stop.is_set():
                    key = f"c{c}-{i}"
                    try:
                        job = client.jobs.submit({**REQUEST, "seed": i}, idempotency_key=key)
                    except landscope.LandscopeError as e:
                        failures.append(f"{key}: {e}")
                        continue  # the same key again: still one job
                    with lock:
                        acked[key] = (job.id, time.monotonic())
                    i += 1

        threads = [threading.Thread(target=submitter, args=(c,)) for c in range(args.clients)]
        for t in threads:
            t.start()
        kills: list[float] = []
        restarts: list[float] = []
        r = redis.Redis.from_url(stack.redis_url)
        for _ in range(args.cycles):
            time.sleep(args.period)  # load between kills; this is a benchmark, not a test
            pid = stack.redis_pid
            assert pid is not None
            before = stack.redis_restarts
            kills.append(time.monotonic())
            os.kill(pid, signal.SIGKILL)
            while stack.redis_restarts == before:
                time.sleep(0.01)
            while True:
                try:
                    r.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.01)
            restarts.append(time.monotonic() - kills[-1])
        time.sleep(args.period)
        stop.set()
        for t in threads:
            t.join()

        with landscope.Client(stack.url, api_key=stack.api_key, timeout=30) as client:
            lost = [k for k, (jid, _) in acked.items() if _missing(client, jid)]
            near_kill = [k for k in lost
                         if any(0 <= kt - acked[k][1] < 1.0 for kt in kills)]
            listed = [j.id for j in client.jobs.list()]
            unique = {jid for jid, _ in acked.values()}
            duplicates = len(listed) - len(set(listed)) + len(set(listed) - unique)
            reruns = 0
            stuck: list[str] = []
            for jid in unique - {acked[k][0] for k in lost}:
                try:
                    done = client.jobs.wait(jid, timeout=args.wait)
                except landscope.WaitTimeout:
                    stuck.append(jid)
                    continue
                stuck += [jid] if done.status != "succeeded" else []
                reruns += max(0, done.attempts - 1)
            for jid in stuck[:5]:
                _diagnose(r, jid)
            unfinished = len(stuck)
        worker_log = "".join(w.log.read_text(errors="replace") for w in stack.worker_procs)
        requeued = worker_log.count("re-queued after its worker was lost")
        interrupted = worker_log.count("raised unexpected: network:ConnectionError")
        resent = sum(int(m) for m in re.findall(
            r"re-sent (\d+) queued jobs whose messages a Redis restart stranded", worker_log))

    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} - "
        f"{'compose' if args.compose else 'local'} Redis flags: {' '.join(redis_args)}",
        "",
        f"- machine: {platform.node()}, {os.cpu_count()} cores; {args.clients} clients, "
        f"{args.cycles} kill -9 cycles every {args.period:g} s",
        f"- acknowledged jobs: {len(acked)}",
        f"- lost: {len(lost)} (of which acknowledged < 1 s before a kill: {len(near_kill)})",
        f"- duplicate job records: {duplicates}; jobs run more than once: {reruns}",
        f"- not succeeded at the end: {unfinished}",
        f"- runs interrupted by an outage (task raised ConnectionError): {interrupted}; "
        f"re-queued by the reaper after their lease lapsed: {requeued}",
        f"- queued jobs re-sent after a restart stranded their message: {resent}",
        f"- submissions refused during outages and retried (same key): {len(failures)}",
        f"- Redis answering again after each kill (s): "
        f"{', '.join(f'{x:.2f}' for x in restarts)}",
        f"- command: .venv/bin/python benchmarks/redis_kill_cycles.py --cycles {args.cycles} "
        f"--period {args.period:g} --clients {args.clients}"
        f"{' --compose' if args.compose else ''}",
        "",
    ]
    print("\n".join(lines))
    with open(args.out, "a") as fh:
        fh.write("\n".join(lines) + "\n")


def _diagnose(r: redis.Redis, job_id: str) -> None:
    """Where a job that never finished is: its record, and its task in the broker."""
    record = {k.decode(): v.decode()[:200] for k, v in r.hgetall(f"ls:job:{job_id}").items()}
    task_id = record.get("task_id", "?")
    in_queue = any(task_id.encode() in m for q in (b"cpu", b"gpu") for m in r.lrange(q, 0, -1))
    unacked = [k for k, v in r.hgetall("unacked").items() if task_id.encode() in v]
    print(f"stuck {job_id}: status={record.get('status')} attempts={record.get('attempts')} "
          f"task={task_id} in queue list={in_queue} in unacked={bool(unacked)} "
          f"progress={record.get('progress')}")


def _missing(client: landscope.Client, job_id: str) -> bool:
    try:
        client.jobs.get(job_id)
    except landscope.NotFoundError:
        return True
    return False


if __name__ == "__main__":
    main()
