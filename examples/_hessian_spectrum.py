"""Quickstart section: the Hessian spectrum of a small tanh network.

A 3-16-16-1 tanh MLP (P = 353) on 64 teacher-student points with mse: the service finds
the extreme eigenvalues, the trace, the spectral density and the negative curvature (it
is small enough for exact mode, so everything is exact), splits the top eigenvalues into
Gauss-Newton and residual parts, and says whether the point looks like a minimum or a
saddle (THEORY.md, section 3).
"""

from __future__ import annotations

import pathlib
import random
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
