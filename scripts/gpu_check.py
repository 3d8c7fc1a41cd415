"""GPU check of the worker (issue 6): run on a machine with a CUDA device.

Starts a local stack with a CPU worker (queue cpu) and a GPU worker (queue gpu), submits
the same float64 `evaluate` and `hessian_spectrum` (exact and iterative) jobs with
device cpu and device cuda, and compares the numbers (relative tolerance 1e-10). Then a
GPU worker capped at a small memory fraction gets a job too large for it (it must fail
with `out_of_memory`) followed by a small one (it must succeed on the same worker).

    .venv/bin/python scripts/gpu_check.py            # prints a table; exit 0 when all match

Without a CUDA device it says so and exits 2 without checking anything.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import torch

import landscope
from landscope_service.local import LocalStack

RTOL = 1e-10


def _request(kind: str, device: str, options: dict[str, Any] | None = None,
             hidden: list[int] | None = None, n: int = 256) -> dict[str, Any]:
    return {
        "kind": kind,
        "model": {"architecture": {"type": "mlp", "input_dim": 8, "hidden": hidden or [32, 32],
                                   "output_dim": 3, "activation": "tanh"},
                  "init_seed": 1},
        "data": {"synthetic": {"name": "gaussian_classes", "num_samples": n, "seed": 0}},
        "loss": "cross_entropy", "dtype": "float64", "device": device,
        "options": options or {}, "seed": 0,
    }


def _numbers(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        out[prefix] = float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _numbers(f"{prefix}.{k}" if prefix else k, v, out)
    elif isinstance(value, list) and len(value) <= 64:
        for i, v in enumerate(value):
            _numbers(f"{prefix}[{i}]", v, out)


def compare(cpu: dict[str, Any], gpu: dict[str, Any], keys: list[str]) -> list[str]:
    a: dict[str, float] = {}
    b: dict[str, float] = {}
    for k in keys:
        _numbers(k, cpu.get(k), a)
        _numbers(k, gpu.get(k), b)
    bad = []
    for k in sorted(a):
        if k not in b:
            bad.append(f"{k}: missing on cuda")
            continue
        scale = max(abs(a[k]), 1e-300)
        if not math.isclose(a[k], b[k], rel_tol=RTOL, abs_tol=1e-12 * scale + 1e-14):
            bad.append(f"{k}: cpu {a[k]!r} cuda {b[k]!r} (rel {abs(a[k] - b[k]) / scale:.2e})")
    return bad


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing was checked.")
        return 2
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    cases = [
        ("evaluate", {}, ["loss", "grad_norm", "per_sample_loss"]),
        ("hessian_spectrum", {"mode": "exact", "top_k": 5, "bottom_k": 3},
         ["top", "bottom", "trace"]),
        ("hessian_spectrum", {"mode": "iterative", "top_k": 3, "bottom_k": 1, "tol": 1e-10,
                              "density": False, "trace": False, "ggn_split": False},
         ["top", "bottom"]),
    ]
    failures = 0
    with LocalStack(workers=0, env={"LANDSCOPE_LOG_LEVEL": "WARNING"}) as stack:
        stack.start_worker(name="cpu", queues=["cpu"])
        gpu = stack.start_worker(name="gpu", queues=["gpu"])
        stack.wait_ready(300, workers=2)
        with landscope.Client(stack.url, api_key=stack.api_key, timeout=120) as client:
            for kind, options, keys in cases:
                jobs = {d: client.jobs.submit(_request(kind, d, options)) for d in ("cpu", "cuda")}
                done = {d: client.jobs.wait(j.id, timeout=1200) for d, j in jobs.items()}
                for d, j in done.items():
                    if j.status != "succeeded":
                        print(f"FAIL {kind} {options} on {d}: {j.status} {j.error}")
                        failures += 1
                if any(j.status != "succeeded" for j in done.values()):
                    continue
                bad = compare(dict(done["cpu"].result or {}), dict(done["cuda"].result or {}),
                              keys)
                where = (done["cuda"].execution or {}).get("worker")
                status = "ok" if not bad else "MISMATCH"
                print(f"{status:8s} {kind} {options}: cpu vs cuda ({where}) to {RTOL:g} rel")
                for line in bad[:20]:
                    print(f"         {line}")
                failures += bool(bad)
        stack.stop_worker(gpu)  # the next GPU jobs go to a worker capped at 0.1% of memory
        stack.worker_procs.remove(gpu)
        stack.start_worker(name="gpu-capped", queues=["gpu"],
                           env={"LANDSCOPE_GPU_MEMORY_FRACTION": "0.001"})
        stack.wait_ready(300, workers=2)
        with landscope.Client(stack.url, api_key=stack.api_key, timeout=120) as client:
            big = client.jobs.submit(_request("hessian_spectrum", "cuda",
                                              {"mode": "exact", "exact_threshold": 20000},
                                              hidden=[128, 128], n=4096))
            t0 = time.monotonic()
            big_done = client.jobs.wait(big.id, timeout=1200)
            small = client.jobs.wait(client.jobs.submit(_request("evaluate", "cuda")).id,
                                     timeout=600)
            oom_ok = (big_done.status == "failed" and big_done.error is not None
                      and big_done.error.code == "out_of_memory")
            print(f"{'ok' if oom_ok else 'FAIL':8s} capped worker: large job -> "
                  f"{big_done.status} {big_done.error} ({time.monotonic() - t0:.1f} s)")
            print(f"{'ok' if small.status == 'succeeded' else 'FAIL':8s} same worker, next "
                  f"small job -> {small.status}")
            failures += (not oom_ok) + (small.status != "succeeded")
    print("all checks passed" if failures == 0 else f"{failures} check(s) failed")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
