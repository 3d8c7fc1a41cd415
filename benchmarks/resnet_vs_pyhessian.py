"""Benchmark: ResNet-20 (CIFAR) through ``from_module``, landscope vs PyHessian.

ResNet-20 (He et al. 2016, option-A shortcuts, 0.27M parameters) on synthetic
CIFAR-shaped images (3x32x32, 10 classes), cross-entropy, float32, one thread, one
process. The network is traced by ``landscope.from_module`` and built by the service's
graph builder from the JSON alone; PyHessian runs on the very same ``nn.Module`` and
data (the module itself, in eval mode). Tasks:

* top eigenvalue to 1e-4 relative: landscope's Lanczos (``tol=1e-4``: the residual
  bounds the eigenvalue error) against PyHessian's power iteration at its default
  ``tol=1e-3`` and at ``tol=1e-5`` (which it needs to get near 1e-4); errors against a
  reference Lanczos run at ``tol=1e-7``;
* trace from 100 Hutchinson probes: PyHessian's ``trace(maxIter=100)`` against
  landscope's ``hutchinson`` with 100 Rademacher probes and ``hutchpp`` with half the
  products (standard errors reported);
* cost per Hessian-vector product of the graph-built module against the user's own
  module (the same operator, the same parameters; median of interleaved repeats).

Run in the benchmark environment (``make bench-env``; PyHessian installed with
``--no-deps``, its ``torch.eig`` is not needed here)::

    .venv-bench/bin/python benchmarks/resnet_vs_pyhessian.py            # 512 images
    .venv-bench/bin/python benchmarks/resnet_vs_pyhessian.py --samples 128

Writes ``benchmarks/results/resnet_vs_pyhessian.md`` (and ``.json``).
"""

from __future__ import annotations

# ruff: noqa: E402  (thread limits must be set before numpy/torch are imported)
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from graph_models import ResNet

import landscope
from landscope_service.diagnostics import Problem
from landscope_service.diagnostics.hessian import (
    HessianOperator,
    hutchinson,
    hutchpp,
    lanczos_extremes,
)
from landscope_service.modelspec.build import build_model
from landscope_service.modelspec.schemas import ArchitectureSchema
from landscope_service.modelspec.shapes import analyze
from landscope_service.modelspec.weights import load_weights

torch.set_num_threads(1)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def setup(samples: int, seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = ResNet(n=3, width=16, classes=10, option="A").eval()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(samples, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (samples,), generator=g)
    return model, x, y


def graph_problem(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Problem:
    """The worker's problem: from_module JSON -> schema and shape checks -> graph build ->
    weights loaded from the safetensors bytes (as ``build_problem`` does, data given)."""
    spec = landscope.from_module(model, x[:2])
    arch = ArchitectureSchema().load(json.loads(json.dumps(spec.architecture)))
    info = analyze(arch)
    params, buffers = load_weights(spec.weights, info.param_shapes,
                                   buffer_shapes=info.buffer_shapes)
    graph = build_model(arch, device="meta")
    graph.load_state_dict({**params, **buffers}, strict=True, assign=True)
    return Problem(graph.eval(), params, x, y, "cross_entropy", buffers=buffers)


def _pyhessian_product(model: nn.Module, x: torch.Tensor, y: torch.Tensor
                       ) -> Callable[[torch.Tensor], Any] | None:
    """PyHessian's own product (its ``hessian_vector_product`` on its gradient graph)."""
    try:
        from pyhessian import hessian as pyh
    except ImportError:
        return None
    mod = sys.modules["pyhessian.hessian"]
    hc = pyh(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    sizes = [q.numel() for q in hc.params]

    def product(v: torch.Tensor) -> Any:
        parts = [t.view_as(q) for t, q in zip(torch.split(v, sizes), hc.params, strict=True)]
        return mod.hessian_vector_product(hc.gradsH, hc.params, parts)

    return product


def per_product(problems: dict[str, Problem], reps: int,
                extra: dict[str, Callable[[torch.Tensor], Any]] | None = None
                ) -> dict[str, float]:
    """Median seconds per Hessian-vector product, interleaving the problems (and any
    ``extra`` product functions, e.g. PyHessian's), so load changes hit all alike."""
    ops: dict[str, Any] = {k: HessianOperator(p) for k, p in problems.items()}
    size = next(iter(ops.values())).shape[0]
    for k, fn in (extra or {}).items():
        ops[k] = type("Op", (), {"__matmul__": lambda self, v, fn=fn: fn(v)})()
    v = torch.randn(size, generator=torch.Generator().manual_seed(5))
    for op in ops.values():  # warm-up (graph building, allocator)
        op @ v
    times: dict[str, list[float]] = {k: [] for k in ops}
    for _ in range(reps):
        for k, op in ops.items():
            _, t = timed(lambda op=op: op @ v)
            times[k].append(t)
    return {k: statistics.median(ts) for k, ts in times.items()}


def run_pyhessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ref: float,
                  probes: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    from pyhessian import hessian as pyh

    mod = sys.modules["pyhessian.hessian"]
    count = [0]
    orig = mod.hessian_vector_product

    def counted(*a: Any, **k: Any) -> Any:
        count[0] += 1
        return orig(*a, **k)

    mod.hessian_vector_product = counted
    rows: list[dict[str, Any]] = []
    hc, t_init = timed(lambda: pyh(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False))
    log(f"PyHessian setup (forward, backward with create_graph): {t_init:.1f} s")
    for tol in (1e-3, 1e-5):
        torch.manual_seed(0)
        count[0] = 0
        (vals, _), t = timed(lambda tol=tol: hc.eigenvalues(top_n=1, maxIter=1000, tol=tol))
        err = abs(vals[0] - ref) / abs(ref)
        rows.append({"tool": "PyHessian", "task": f"top eigenvalue (power, tol={tol:g})",
                     "products": count[0], "wall_s": t + t_init, "value": vals[0],
                     "rel_error": err})
        log(f"PyHessian top tol={tol:g}: {vals[0]:.6g} err {err:.2e} in {count[0]} products, "
            f"{t + t_init:.1f} s")
    torch.manual_seed(0)
    count[0] = 0
    # tol=-inf: PyHessian 0.1 stops when |mean - prev| / (prev + 1e-6) < tol, which is
    # true at once for a negative running mean unless tol is -inf
    tr, t = timed(lambda: hc.trace(maxIter=probes, tol=float("-inf")))
    arr = np.asarray(tr, dtype=np.float64)
    rows.append({"tool": "PyHessian", "task": f"trace, Hutchinson {probes}",
                 "products": count[0], "wall_s": t + t_init, "value": float(arr.mean()),
                 "std_error": float(arr.std(ddof=1) / np.sqrt(arr.size))})
    log(f"PyHessian trace: {arr.mean():.6g} +- {arr.std(ddof=1) / np.sqrt(arr.size):.3g} "
        f"({count[0]} products, {t + t_init:.1f} s)")
    mod.hessian_vector_product = orig
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--probes", type=int, default=100)
    p.add_argument("--reps", type=int, default=7, help="repeats of the per-product timing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--products-only", action="store_true",
                   help="only the interleaved per-product timings (no result files)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    lines: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    log(f"ResNet-20 (option A), {args.samples} images 3x32x32, 10 classes, float32, "
        f"1 thread; torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"load average {load:.1f} on {os.cpu_count()} CPUs at start")
    model, x, y = setup(args.samples, args.seed)
    nparams = sum(q.numel() for q in model.parameters())
    log(f"parameters: {nparams}")
    gp, t_build = timed(lambda: graph_problem(model, x, y))
    log(f"from_module + submit checks + graph build + weights: {t_build:.2f} s")
    user = Problem(model, {k: v.detach() for k, v in model.named_parameters()}, x, y,
                   "cross_entropy", buffers=dict(model.named_buffers()))

    py_product = _pyhessian_product(model, x, y)
    costs = per_product({"graph": gp, "user": user}, args.reps,
                        {"pyhessian": py_product} if py_product is not None else None)
    ratio = costs["graph"] / costs["user"]
    log(f"per product (interleaved medians): graph-built {costs['graph']:.3f} s, user's "
        f"module {costs['user']:.3f} s, ratio {ratio:.3f}"
        + (f"; PyHessian's product {costs['pyhessian']:.3f} s" if "pyhessian" in costs
           else ""))
    if args.products_only:
        return 0

    ref_res, t_ref = timed(lambda: lanczos_extremes(HessianOperator(gp), k_top=1, k_bottom=0,
                                                    tol=1e-7, max_products=400, seed=99))
    ref = float(ref_res.top[0])
    log(f"reference top eigenvalue {ref:.8g} (Lanczos tol 1e-7, {ref_res.status}, "
        f"{t_ref:.1f} s)")

    rows: list[dict[str, Any]] = []
    op = HessianOperator(gp)
    res, t = timed(lambda: lanczos_extremes(op, k_top=1, k_bottom=0, tol=1e-4, seed=0))
    err = abs(float(res.top[0]) - ref) / abs(ref)
    rows.append({"tool": "landscope", "task": "top eigenvalue (Lanczos, tol=1e-4)",
                 "products": op.num_products, "wall_s": t, "value": float(res.top[0]),
                 "rel_error": err})
    log(f"landscope top: {float(res.top[0]):.6g} err {err:.2e} in {op.num_products} "
        f"products, {t:.1f} s")
    half = max(3, (args.probes // 2) - (args.probes // 2) % 3)
    for name, fn in (("hutchinson", lambda o: hutchinson(o, args.probes, seed=0)),
                     ("hutch++", lambda o: hutchpp(o, half, seed=0))):
        op = HessianOperator(gp)
        est, t = timed(lambda fn=fn, op=op: fn(op))
        rows.append({"tool": "landscope", "task": f"trace, {name} {op.num_products}",
                     "products": op.num_products, "wall_s": t, "value": est.estimate,
                     "std_error": est.std_error})
        log(f"landscope trace {name}: {est.estimate:.6g} +- {est.std_error:.3g} "
            f"({op.num_products} products, {t:.1f} s)")
    try:
        rows += run_pyhessian(model, x, y, ref, args.probes, log)
    except ImportError as e:
        log(f"PyHessian not installed ({e}); run `make bench-env`.")

    ours_top = rows[0]
    py_rows = [r for r in rows if r["tool"] == "PyHessian" and "top" in r["task"]]
    summary = []
    for r in py_rows:
        summary.append(f"top eigenvalue: landscope / PyHessian ({r['task']}) wall time "
                       f"{ours_top['wall_s'] / r['wall_s']:.2f}x, errors "
                       f"{ours_top['rel_error']:.1e} vs {r['rel_error']:.1e}")
    py_tr = next((r for r in rows if r["tool"] == "PyHessian" and "trace" in r["task"]), None)
    if py_tr is not None:
        for r in rows:
            if r["tool"] == "landscope" and "trace" in r["task"]:
                summary.append(f"trace: landscope {r['task']} / PyHessian wall time "
                               f"{r['wall_s'] / py_tr['wall_s']:.2f}x, std errors "
                               f"{r['std_error']:.3g} vs {py_tr['std_error']:.3g}")
    summary.append(f"graph-built module per product / user's module: {ratio:.3f}x")
    for s in summary:
        log(s)

    args.out.mkdir(parents=True, exist_ok=True)
    md = ["# ResNet-20 through from_module: landscope vs PyHessian", "",
          "Command: `.venv-bench/bin/python benchmarks/resnet_vs_pyhessian.py "
          + " ".join(argv or sys.argv[1:]) + "`", "", "```", *lines, "```", "",
          "| tool | task | products | wall (s) | value | rel. error / std. error |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        acc = (f"{r['rel_error']:.1e}" if "rel_error" in r else f"+- {r['std_error']:.3g}")
        md.append(f"| {r['tool']} | {r['task']} | {r['products']} | {r['wall_s']:.1f} | "
                  f"{r['value']:.6g} | {acc} |")
    (args.out / "resnet_vs_pyhessian.md").write_text("\n".join(md) + "\n")
    (args.out / "resnet_vs_pyhessian.json").write_text(json.dumps(
        {"rows": rows, "per_product_s": costs, "ratio": ratio, "reference": ref,
         "samples": args.samples, "load_average": load}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
