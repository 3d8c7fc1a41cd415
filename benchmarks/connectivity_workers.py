"""Speed-up of a level_set_connectivity job with 2 Celery workers against 1 (issue 5).

The same job (M seed-trained minima of a small MLP: M training subtasks, then the pair
paths) is submitted to a local stack with one worker, then to a stack with two workers
(each one process, one torch thread, so 2 workers use the 2 cores), through the SDK.
Wall time runs from submit to result; the job's `execution.pieces` shows where its
pieces ran.

    .venv/bin/python benchmarks/connectivity_workers.py [--minima 8] [--steps 1500]

Target: speed-up >= 1.6. Results: benchmarks/results/connectivity_workers.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import landscope
from landscope_service.local import LocalStack


def request(minima: int, steps: int) -> dict[str, Any]:
    return {
        "kind": "level_set_connectivity",
        "model": {"architecture": {"type": "mlp", "input_dim": 2, "hidden": [16],
                                   "output_dim": 1, "activation": "tanh"},
                  "init_seed": 0},
        "data": {"synthetic": {"name": "teacher_student", "num_samples": 64, "seed": 0}},
        "loss": "mse", "dtype": "float64",
        "options": {"num_trained": minima, "train": {"steps": steps, "lr": 0.02},
                    "refine": {"strategy": "mst"}},
    }


def timed_run(workers: int, req: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    env = {"LANDSCOPE_TORCH_THREADS": "1", "LANDSCOPE_LOG_LEVEL": "WARNING"}
    with LocalStack(workers=workers, concurrency=1, env=env) as stack, \
            landscope.Client(stack.url, api_key=stack.api_key) as client:
        warm = client.jobs.wait(client.jobs.submit(
            {**req, "options": {**req["options"], "num_trained": 2,
                                "train": {"steps": 5}}}).id, timeout=600)
        if warm.status != "succeeded":
            raise RuntimeError(f"warm-up failed: {warm.error}")
        t0 = time.perf_counter()
        done = client.jobs.wait(client.jobs.submit(req).id, timeout=3600)
        dt = time.perf_counter() - t0
        if done.status != "succeeded":
            raise RuntimeError(f"job failed: {done.error}")
        return dt, dict(done.execution or {})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--minima", type=int, default=8)
    p.add_argument("--steps", type=int, default=1500)
    args = p.parse_args()
    req = request(args.minima, args.steps)
    t1, e1 = timed_run(1, req)
    t2, e2 = timed_run(2, req)
    speedup = t1 / t2
    text = "\n".join([
        "# level_set_connectivity: 2 Celery workers against 1 (issue 5)",
        "",
        f"Command: `.venv/bin/python benchmarks/connectivity_workers.py --minima {args.minima} "
        f"--steps {args.steps}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; local stack; each worker one "
        "process with one torch thread (LANDSCOPE_TORCH_THREADS=1).",
        f"Job: {args.minima} seed-trained minima of a 2-16-1 tanh MLP (adam, {args.steps} "
        "steps), 64 points, MST-first AutoNEB refinement, float64.",
        "",
        "| workers | wall time (s) | pieces per worker |",
        "|---|---|---|",
        f"| 1 | {t1:.1f} | {e1.get('pieces')} |",
        f"| 2 | {t2:.1f} | {e2.get('pieces')} |",
        "",
        f"Speed-up: **{speedup:.2f}x** (target >= 1.6x).",
        "",
    ])
    print(text)
    (Path(__file__).parent / "results" / "connectivity_workers.md").write_text(text)


if __name__ == "__main__":
    main()
