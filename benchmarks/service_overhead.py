"""Service overhead of the job API on the local stack.

1. Median submit-to-result latency of an `evaluate` job on a tiny model (50 runs, one
   client, through the SDK: submit, then wait, which long-polls `GET /v1/jobs/{id}?wait=`).
2. Submissions per second with 8 concurrent SDK clients (each submits N jobs; the clock
   runs from the first submit to the last 202).

    .venv/bin/python benchmarks/service_overhead.py [--runs 50] [--clients 8] [--per-client 50]

Targets (issue 2): median latency < 30 ms; >= 200 submissions/s on a 2-core machine.
Results are written to benchmarks/results/service_overhead.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from pathlib import Path

import landscope
from landscope_service.local import LocalStack

REQUEST = {
    "kind": "evaluate",
    "model": {"architecture": {"type": "mlp", "input_dim": 3, "hidden": [8],
                               "output_dim": 1, "activation": "tanh", "bias": True},
              "init_seed": 0},
    "data": {"inline": {"x": [[0.1, 0.2, 0.3], [0.0, 1.0, -1.0], [0.5, 0.5, 0.5]],
                        "y": [[1.0], [0.0], [0.5]]}},
    "loss": "mse",
}


def latency(client: landscope.Client, runs: int) -> list[float]:
    out = []
    for i in range(runs + 3):
        t0 = time.perf_counter()
        job = client.jobs.submit({**REQUEST, "seed": i})
        done = client.jobs.wait(job.id, timeout=30)
        dt = time.perf_counter() - t0
        if done.status != "succeeded":
            raise RuntimeError(f"job {job.id} ended {done.status}: {done.error}")
        if i >= 3:  # the first runs warm the worker's imports
            out.append(dt)
    return out


def throughput(url: str, key: str, clients: int, per_client: int) -> tuple[float, int]:
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def work(c: int) -> None:
        with landscope.Client(url, api_key=key) as client:
            client.health()
            barrier.wait()
            try:
                for i in range(per_client):
                    client.jobs.submit({**REQUEST, "seed": 1000 + c * per_client + i})
            except BaseException as e:
                errors.append(e)

    threads = [threading.Thread(target=work, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return clients * per_client / dt, clients * per_client


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--per-client", type=int, default=50)
    p.add_argument("--api-workers", type=int, default=2)
    args = p.parse_args()
    with LocalStack(workers=1, api_workers=args.api_workers,
                    env={"LANDSCOPE_LOG_LEVEL": "WARNING"}) as stack:
        with landscope.Client(stack.url, api_key=stack.api_key) as client:
            lat = latency(client, args.runs)
        rate, n = throughput(stack.url, stack.api_key, args.clients, args.per_client)
    med = statistics.median(lat) * 1000
    p90 = statistics.quantiles(lat, n=10)[-1] * 1000
    lines = [
        "# Service overhead (issue 2)",
        "",
        f"Command: `.venv/bin/python benchmarks/service_overhead.py --runs {args.runs} "
        f"--clients {args.clients} --per-client {args.per_client}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; local stack (private Redis, gunicorn with "
        f"{args.api_workers} processes, one Celery worker), all on this machine.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| submit-to-result latency, median of {len(lat)} | {med:.1f} ms | < 30 ms |",
        f"| submit-to-result latency, p90 | {p90:.1f} ms | |",
        f"| submissions/s, {args.clients} concurrent clients ({n} jobs) | {rate:.0f} /s "
        "| >= 200 /s |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).parent / "results" / "service_overhead.md"
    out.write_text(text)


if __name__ == "__main__":
    main()
