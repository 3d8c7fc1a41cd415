"""Exact mode's dense Hessian: blocked products vs ``torch.func.hessian`` on a conv net.

The problem of issue 11: a conv + batch-norm net (P = 1,986) on scikit-learn's 8x8 digits
(the 1,437-image training split), cross-entropy, float32, one CPU thread. Before, exact
mode ran ``jacrev(jacrev)`` over the whole batch: 19 minutes at 0% and 4.3 GB, without
progress or cancel. Now it builds the matrix from blocked Hessian-vector products
(``diagnostics/hessian/exact.py``), with progress and a cancel check per block.

In one run: the reference ``torch.func.hessian`` (forward-over-reverse Jacobian of the
gradient) and ``jacrev(jacrev)`` on a subsample small enough to finish (N = 128), the
blocked build on the same subsample (ratios, and the largest difference), then the
blocked build on all 1,437 images beside the submit-time estimate of both modes.
Peak memory is ``ru_maxrss`` of a fresh subprocess per measurement.

Usage (needs scikit-learn for the digits: ``.venv/bin/pip install scikit-learn``):

    .venv/bin/python benchmarks/exact_blocked.py     # writes results/exact_blocked.md
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "results" / "exact_blocked.md"


def _problem(n: int) -> Any:
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    from landscope_service.diagnostics import Problem

    x, y = load_digits(return_X_y=True)
    rng = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=rng)[:1437][:n]
    xt = torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)[order]
    yt = torch.tensor(y)[order]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 10)).eval()
    return Problem(model, {k: v.detach() for k, v in model.named_parameters()}, xt, yt,
                   "cross_entropy", buffers={k: v for k, v in model.named_buffers()})


def _measure(method: str, n: int) -> dict[str, Any]:
    import torch
    from torch.func import hessian, jacrev

    from landscope_service.diagnostics import Monitor
    from landscope_service.diagnostics.hessian import dense_hessian
    from landscope_service.diagnostics.problem import flatten, unflatten

    torch.set_num_threads(1)
    pr = _problem(n)
    theta = flatten(pr.params)

    def loss(t: torch.Tensor) -> torch.Tensor:
        return pr.full_loss(unflatten(t, pr.params))

    reports: list[float] = []
    t0 = time.perf_counter()
    if method == "blocked":
        h = dense_hessian(pr, monitor=Monitor(progress=lambda s, f, m: reports.append(
            time.perf_counter() - t0), min_interval=0.0))
    elif method == "torch.func.hessian":
        h = hessian(loss)(theta)
    else:
        h = jacrev(jacrev(loss))(theta)
    seconds = time.perf_counter() - t0
    path = Path(os.environ["BENCH_OUT"])
    torch.save(h, path)
    gaps = [b - a for a, b in itertools.pairwise(reports)]
    return {"method": method, "n": n, "p": pr.num_params, "seconds": seconds,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "reports": len(reports), "max_gap_s": max(gaps) if gaps else None}


def _run(method: str, n: int, tmp: Path) -> tuple[dict[str, Any], Path]:
    out = tmp / f"{method}-{n}.pt"
    proc = subprocess.run([sys.executable, __file__, "--one", method, str(n)],
                          env={**os.environ, "BENCH_OUT": str(out), "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1]), out


def main() -> None:
    import tempfile

    import torch

    from landscope_service.diagnostics.cost import hessian_estimate

    tmp = Path(tempfile.mkdtemp(prefix="exact-blocked-"))
    rows = []
    small = {}
    for method in ("torch.func.hessian", "jacrev(jacrev)", "blocked"):
        row, path = _run(method, 128, tmp)
        rows.append(row)
        small[method] = torch.load(path)
        print(row, flush=True)
    ref = small["torch.func.hessian"]
    diff = float((small["blocked"] - ref).abs().max() / ref.abs().max())
    full, _ = _run("blocked", 1437, tmp)
    rows.append(full)
    print(full, flush=True)
    est = hessian_estimate(full["p"], 1437, {}, itemsize=4)
    base = rows[0]["seconds"]
    lines = [
        "# Exact mode: blocked dense Hessian vs torch.func",
        "",
        f"Conv + batch-norm net, P = {full['p']}, digits (8x8), cross-entropy, float32, "
        f"one CPU thread; {platform.processor() or platform.machine()}, load average "
        f"{os.getloadavg()[0]:.1f} at the end (a shared 2-core machine).",
        "`python benchmarks/exact_blocked.py`",
        "",
        "| method | N | seconds | x torch.func.hessian (N=128) | peak RSS MiB | "
        "progress reports | longest gap between reports (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gap = "-" if r["max_gap_s"] is None else f"{r['max_gap_s']:.2f}"
        lines.append(f"| {r['method']} | {r['n']} | {r['seconds']:.1f} | "
                     f"{r['seconds'] / base:.2f} | {r['peak_mib']:.0f} | {r['reports']} | "
                     f"{gap} |")
    lines += [
        "",
        f"Blocked vs torch.func.hessian at N = 128: largest difference {diff:.1e} of the "
        "largest entry (float32).",
        "",
        f"Submit-time estimate for N = 1437 (default rates): exact "
        f"{est['modes']['exact']['seconds']['typical']:.1f} s typical "
        f"[{est['modes']['exact']['seconds']['low']:.1f}, "
        f"{est['modes']['exact']['seconds']['high']:.1f}], iterative "
        f"{est['modes']['iterative']['seconds']['typical']:.1f} s typical; `auto` chooses "
        f"**{est['mode']}**.",
        "",
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(_measure(sys.argv[2], int(sys.argv[3]))))
    else:
        main()
