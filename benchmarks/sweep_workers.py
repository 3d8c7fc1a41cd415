"""Speed-up of each sweep claim's default sweep with 2 Celery workers against 1 (issue 16).

The quickstart's sweep problem (a 2-16-16-1 tanh network on 64 points of two moons, 0/1
targets, squared error, float32) is submitted with each claim's default options (except
``--steps``, the training budget of every run, to fit a session) to a local stack with one
worker, then to one with two workers (each one process, one torch thread). Every
(variant, seed) run is a piece, so the pieces spread over both workers. Wall time runs
from submit to result; the job's ``execution.pieces`` shows where its pieces ran.

    .venv/bin/python benchmarks/sweep_workers.py [--claims edge_of_stability ...] [--steps N]

Target: speed-up >= 1.7. Never part of `make test`.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import landscope
from landscope_service.diagnostics.options.sweep import CLAIMS
from landscope_service.local import LocalStack


def request(claim: str, steps: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {"claim": claim}
    if steps is not None:
        options["train"] = {"steps": steps}
    return {
        "kind": "sweep",
        "model": {"architecture": {"type": "mlp", "input_dim": 2, "hidden": [16, 16],
                                   "output_dim": 1, "activation": "tanh", "bias": True},
                  "init_seed": 0},
        "data": {"synthetic": {"name": "two_moons", "num_samples": 64, "seed": 0}},
        "loss": "mse", "dtype": "float32", "options": options,
    }


def timed_runs(workers: int, reqs: list[dict[str, Any]]) -> list[tuple[float, dict[str, Any],
                                                                         str]]:
    env = {"LANDSCOPE_TORCH_THREADS": "1", "LANDSCOPE_LOG_LEVEL": "WARNING"}
    out = []
    with LocalStack(workers=workers, concurrency=1, env=env) as stack, \
            landscope.Client(stack.url, api_key=stack.api_key) as client:
        warm = client.jobs.wait(client.jobs.submit(
            {**reqs[0], "options": {"claim": "edge_of_stability", "train": {"steps": 2}}}).id,
            timeout=600)
        if warm.status != "succeeded":
            raise RuntimeError(f"warm-up failed: {warm.error}")
        for req in reqs:
            t0 = time.perf_counter()
            done = client.jobs.wait(client.jobs.submit(req).id, timeout=3600)
            dt = time.perf_counter() - t0
            if done.status != "succeeded":
                raise RuntimeError(f"job failed: {done.error}")
            out.append((dt, dict(done.execution or {}), str((done.result or {}).get("verdict"))))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--claims", nargs="*", default=list(CLAIMS), choices=list(CLAIMS))
    p.add_argument("--steps", type=int, default=None,
                   help="train.steps of every run (default: the claim's default)")
    args = p.parse_args()
    reqs = [request(c, args.steps) for c in args.claims]
    one = timed_runs(1, reqs)
    two = timed_runs(2, reqs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# sweep_workers: {platform.machine()}, {os.cpu_count()} cores, load {load:.1f}, "
          f"train.steps {args.steps or 'default'}")
    print("| claim | 1 worker (s) | 2 workers (s) | speed-up | pieces (2 workers) | verdict |")
    print("|---|---|---|---|---|---|")
    for claim, (t1, _, v1), (t2, ex2, v2) in zip(args.claims, one, two, strict=True):
        print(f"| {claim} | {t1:.1f} | {t2:.1f} | {t1 / t2:.2f}x | {ex2.get('pieces')} | "
              f"{v1} / {v2} |")


if __name__ == "__main__":
    main()
