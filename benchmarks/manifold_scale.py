"""Scale benchmark of minimizer_manifold's rank computation: Gram route vs dense route.

A tanh MLP 64 -> 1000 -> 900 -> 1 (P = 966,801) on N = 2,000 random points (r = 1,
rN = 2,000), float64, CPU, one thread. The rank stage alone (the fit of a 1e6-parameter
model is not what is measured): ``Linearization(fn, theta, route)`` at the initial
weights, which builds J (dense: J itself and its thin SVD) or K = J J^T (Gram: from
blocks, J never formed) and the singular values with the rank rule.

Each measurement runs in a fresh subprocess; peak memory is that process's
``ru_maxrss`` (tracemalloc does not see torch's allocations), minus nothing (the
interpreter and torch, ~0.3 GiB, are included). The dense route at rN = 2,000 would
hold J alone in 2,000 * 966,801 * 8 B = 14.4 GiB, so it is run at rN = 64, 128, 192 and
its peak is projected linearly in rN (least squares); the Gram route is run at those
sizes too (ranks compared) and at rN = 2,000.

Usage (from the repository root; writes benchmarks/results/manifold_scale.md):

    .venv/bin/python benchmarks/manifold_scale.py [--gram-memory-mb 4096] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WIDTHS = (64, 1000, 900, 1)
N_FULL = 2000
DENSE_SIZES = (64, 128, 192)
GIB = 2**30


def _worker(route: str, n: int, memory_mb: int) -> dict[str, Any]:
    import resource

    import torch
    from torch import nn

    torch.set_num_threads(1)
    from landscope_service.diagnostics import Problem
    from landscope_service.diagnostics.manifold import Linearization, ResidualFunction

    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(WIDTHS)):
        layers.append(nn.Linear(a, b))
        if i < len(WIDTHS) - 2:
            layers.append(nn.Tanh())
    model = nn.Sequential(*layers).double()
    x = torch.randn(n, WIDTHS[0], dtype=torch.float64)
    y = torch.randn(n, WIDTHS[-1], dtype=torch.float64)
    prob = Problem(model, {k: v.detach() for k, v in model.named_parameters()}, x, y, "mse")
    fn = ResidualFunction(prob, memory_bytes=memory_mb * 2**20)
    theta = fn.initial_point()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    lin = Linearization(fn, theta, route)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rk = lin.rank_result
    return {
        "route": route,
        "rN": fn.num_equations,
        "P": fn.num_params,
        "seconds": seconds,
        "peak_rss_bytes": peak,
        "rss_before_bytes": base,
        "rank": rk.rank,
        "sigma_max": float(rk.singular_values[0]),
        "sigma_min": float(rk.singular_values[-1]),
        "rtol": rk.rtol,
        "chunk_size": fn.chunk_size,
        "outer_size": fn.outer_size,
        "memory_mb": memory_mb,
    }


def _spawn(route: str, n: int, memory_mb: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", route, str(n), str(memory_mb)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(res), flush=True)
    return res


def _fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``y = a + b x``."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - b * mx, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=3, metavar=("ROUTE", "N", "MEMORY_MB"))
    ap.add_argument("--gram-memory-mb", type=int, default=4096,
                    help="memory budget of the Gram route (memory_mb option)")
    ap.add_argument("--quick", action="store_true", help="skip the rN = 2000 Gram run")
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).parent / "results" / "manifold_scale.md")
    args = ap.parse_args()
    if args.worker:
        route, n, mem = args.worker
        print(json.dumps(_worker(route, int(n), int(mem))))
        return

    small: list[dict[str, Any]] = []
    for n in DENSE_SIZES:
        # the dense route gets all the memory it needs: its budget only picks the route
        small.append(_spawn("dense", n, 8192))
        small.append(_spawn("gram", n, args.gram_memory_mb))
    big = None if args.quick else _spawn("gram", N_FULL, args.gram_memory_mb)

    dense = [r for r in small if r["route"] == "dense"]
    gram_small = [r for r in small if r["route"] == "gram"]
    P = dense[0]["P"]
    a, b = _fit_line([r["rN"] for r in dense], [r["peak_rss_bytes"] for r in dense])
    ta, tb = _fit_line([r["rN"] for r in dense], [r["seconds"] for r in dense])
    proj_peak = a + b * N_FULL
    j_bytes = 8 * N_FULL * P

    lines = [
        "# minimizer_manifold: rank computation at scale (Gram vs dense route)",
        "",
        f"Command: `.venv/bin/python benchmarks/manifold_scale.py --gram-memory-mb "
        f"{args.gram_memory_mb}` ({time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} cores shared with other work, torch.set_num_threads(1), float64).",
        "",
        f"Model: tanh MLP {' -> '.join(map(str, WIDTHS))}, P = {P:,}; random inputs, r = 1.",
        "Peak = max RSS of a fresh process doing only this (includes ~0.3 GiB of "
        "interpreter and torch).",
        "",
        "| route | rN | time (s) | peak RSS (GiB) | rank | sigma_max | rtol |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in [*small, *([big] if big else [])]:
        lines.append(
            f"| {r['route']} | {r['rN']} | {r['seconds']:.1f} | "
            f"{r['peak_rss_bytes'] / GIB:.2f} | {r['rank']} | {r['sigma_max']:.3e} | "
            f"{r['rtol']:.1e} |"
        )
    agree = all(d["rank"] == g["rank"] for d, g in zip(dense, gram_small, strict=True))
    lines += [
        "",
        f"Ranks of the two routes agree at every size run by both: {agree}.",
        "",
        "## Dense route at rN = 2,000 (projected)",
        f"J alone: 8 * rN * P = {j_bytes / GIB:.1f} GiB. Linear fit of the measured peaks: "
        f"peak(rN) = {a / GIB:.2f} GiB + rN * {b / 2**20:.2f} MiB "
        f"(J's own share is {8 * P / 2**20:.2f} MiB per row; the rest is the thin SVD's V "
        "and LAPACK workspace), so the projected peak at rN = 2,000 is "
        f"**{proj_peak / GIB:.1f} GiB**; projected time {ta + tb * N_FULL:.0f} s "
        "(linear in rN; the SVD's m^2 P term makes this an underestimate).",
        "",
    ]
    if big:
        ok = big["peak_rss_bytes"] < 8 * GIB
        lines += [
            "## Gram route at rN = 2,000 (measured)",
            f"Peak {big['peak_rss_bytes'] / GIB:.2f} GiB ({'under' if ok else 'OVER'} the "
            f"8 GiB target) in {big['seconds']:.0f} s; outer block {big['outer_size']} "
            f"samples, sub-blocks of {big['chunk_size']}; memory: K (8 rN^2 = "
            f"{8 * N_FULL**2 / 2**20:.0f} MiB), the outer block "
            f"({big['outer_size'] * 8 * P / GIB:.2f} GiB) and one sub-block's peak. "
            f"Rank {big['rank']} of {N_FULL}.",
            "",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
