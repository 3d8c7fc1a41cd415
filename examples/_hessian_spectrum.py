"""Quickstart section: the Hessian spectrum of a small tanh network, then of a small CNN.

A 3-16-16-1 tanh MLP (P = 353) on 64 teacher-student points with mse: the service finds
the extreme eigenvalues, the trace, the spectral density and the negative curvature (it
is small enough for exact mode, so everything is exact), splits the top eigenvalues into
Gauss-Newton and residual parts, and says whether the point looks like a minimum or a
saddle (THEORY.md, section 3).

Then a CNN-sized problem with ``mode: "auto"``: a conv + batch-norm net (P = 1,986) on 512
synthetic 8x8 "digits". The job's submit-time estimate (``job.estimate``: products,
memory, a time range from this worker pool's measured rates, and the mode ``auto``
runs) is printed before it runs, and the measured time after.
"""

from __future__ import annotations

import math
import pathlib
import random
import time
from typing import TYPE_CHECKING, Any

from _common import submit_and_wait

if TYPE_CHECKING:
    import landscope


def _request() -> dict[str, Any]:
    rng = random.Random(0)
    x = [[rng.uniform(-1.0, 1.0) for _ in range(3)] for _ in range(64)]
    y = [[a * b - 0.5 * c] for a, b, c in x]
    return {
        "kind": "hessian_spectrum",
        "model": {
            "architecture": {"type": "mlp", "input_dim": 3, "hidden": [16, 16],
                             "output_dim": 1, "activation": "tanh", "bias": True},
            "init_seed": 0,
        },
        "data": {"inline": {"x": x, "y": y}},
        "loss": "mse",
        "options": {"top_k": 3, "bottom_k": 2, "blocks": True},
        "device": "auto",
        "dtype": "float64",
        "seed": 0,
        "metadata": {"example": "quickstart"},
    }


def _cnn_request() -> dict[str, Any]:
    """Ten noisy 8x8 stroke patterns (one per class), 512 images, cross-entropy."""
    rng = random.Random(1)
    protos = [[1.0 if rng.random() < 0.3 else 0.0 for _ in range(64)] for _ in range(10)]
    x: list[list[list[list[float]]]] = []
    y: list[int] = []
    for i in range(512):
        c = i % 10
        pix = [min(1.0, max(0.0, v + rng.gauss(0.0, 0.25))) for v in protos[c]]
        x.append([[pix[r * 8:(r + 1) * 8] for r in range(8)]])
        y.append(c)
    return {
        "kind": "hessian_spectrum",
        "model": {
            "architecture": {"type": "sequential", "input_shape": [1, 8, 8], "layers": [
                {"type": "conv2d", "out_channels": 8, "kernel_size": 3},
                {"type": "batchnorm"}, {"type": "relu"},
                {"type": "conv2d", "out_channels": 8, "kernel_size": 3},
                {"type": "batchnorm"}, {"type": "relu"},
                {"type": "flatten"}, {"type": "linear", "out_features": 10}]},
            "init_seed": 0,
        },
        "data": {"inline": {"x": x, "y": y}},
        "loss": "cross_entropy",
        "options": {"mode": "auto", "top_k": 3, "bottom_k": 1},
        "dtype": "float32",
        "seed": 0,
        "metadata": {"example": "quickstart-cnn"},
    }


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def run_cnn(client: landscope.Client) -> None:
    """The CNN-sized job: print its estimate, wait, print how long it took."""
    req = _cnn_request()
    job = client.jobs.submit(req)
    print(f"\n== hessian_spectrum, CNN-sized, mode auto ({job.id})")
    est = dict(job.estimate or {})
    if est.get("seconds"):
        sec, prods = est["seconds"], est["products"]
        print(f"  estimate            mode {est['mode']}, ~{prods['typical']} products "
              f"(at most {prods['max']}), {est['memory_bytes'] / 2**20:.1f} MiB")
        print(f"                      {_seconds(sec['typical'])} typical, range "
              f"{_seconds(sec['low'])} - {_seconds(sec['high'])} ({est['rates']['source']})")
    t0 = time.monotonic()
    done = client.jobs.wait(job.id, progress=True)
    took = time.monotonic() - t0
    if done.status != "succeeded" or done.result is None:
        print(f"  job {done.status}: {done.error}")
        return
    res = done.result
    print(f"  took                {_seconds(took)} (queue, model build and run), "
          f"{'exact' if res['exact'] else 'iterative'}, {res['products']['total']} products")
    if est.get("seconds"):
        ratio = took / max(est["seconds"]["typical"], 1e-9)
        inside = est["seconds"]["low"] <= took <= est["seconds"]["high"]
        print(f"                      {ratio:.2g}x the typical estimate, "
              f"{'inside' if inside else 'OUTSIDE'} its range (log error "
              f"{abs(math.log10(max(ratio, 1e-9))):.2f} decades)")
    print(f"  P = {res['num_params']}, N = {res['num_samples']}, top eigenvalues "
          f"{_fmt(res['top']['eigenvalues'])}, lambda_min {_fmt([res['lambda_min']])}, "
          f"status {res['status']}")


def _fmt(values: list[float | None]) -> str:
    return ", ".join("-" if v is None else f"{v:.4g}" for v in values)


def run(client: landscope.Client, outdir: pathlib.Path) -> None:
    """Submit the job, wait with a progress bar, print a summary, save the density plot."""
    done = submit_and_wait(client, _request())
    if done is None:
        return
    res = done.result
    mode = "exact" if res["exact"] else f"iterative, {res['products']['total']} products"
    print(f"  P = {res['num_params']}, N = {res['num_samples']}, loss {res['loss_value']:.4g} "
          f"({mode}, status {res['status']})")
    print(f"  top eigenvalues     {_fmt(res['top']['eigenvalues'])}")
    print(f"  bottom eigenvalues  {_fmt(res['bottom']['eigenvalues'])}")
    trace = res["trace"]
    if trace is not None:
        print(f"  trace               {trace['estimate']:.6g} +- {trace['std_error']:.2g} "
              f"({trace['method']})")
    neg = res["negative"]
    print(f"  negative curvature  mass {neg['mass']:.3g}, count "
          f"{neg['count'] if neg['count'] is not None else neg['count_estimate']}")
    for part in (res.get("ggn_split") or {}).get("top", [])[:1]:
        print(f"  GGN split (top)     {part['eigenvalue']:.4g} = GGN {part['ggn']:.4g} "
              f"+ residual {part['residual']:.4g}")
    for block in res.get("blocks") or []:
        print(f"  layer {block['name']:<4}          top {block['top_eigenvalue']:.4g}, "
              f"trace {block['trace']:.4g}")
    theory = res["theory"]
    print(f"  verdict             {theory['verdict']}")
    for note in theory["notes"]:
        print(f"                      - {note}")
    for warning in res["warnings"]:
        print(f"  WARNING             {warning}")
    names = {a.name for a in done.artifacts}
    if "density.png" in names:
        path = outdir / "hessian_spectrum_density.png"
        path.write_bytes(client.jobs.artifact(done.id, "density.png"))
        print(f"  plot                {path}")
    run_cnn(client)
