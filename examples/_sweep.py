"""Quickstart section: does the edge of stability (Cohen et al. 2021) happen here?

A 2-16-16-1 tanh network on 64 points of two moons (0/1 targets, squared error), trained
by full-batch gradient descent from 3 seeds at two learning rates with a reduced budget
(300 steps). Every 10 steps the service measures lambda_max (Lanczos top-1, warm-started)
and asks whether it settles within 5% of 2/eta over the last third of the run. Prints the
verdict with k/n seeds, the effect with its bootstrap interval, and per rate and seed the
ratio lambda_max / (2/eta).
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING, Any

from _common import submit_and_wait

from landscope.kinds.sweep import SweepResult

if TYPE_CHECKING:
    import landscope


def _request() -> dict[str, Any]:
    return {
        "kind": "sweep",
        "model": {
            "architecture": {"type": "mlp", "input_dim": 2, "hidden": [16, 16],
                             "output_dim": 1, "activation": "tanh", "bias": True},
            "init_seed": 0,
        },
        "data": {"synthetic": {"name": "two_moons", "num_samples": 64, "seed": 0}},
        "loss": "mse",
        "options": {"claim": "edge_of_stability", "seeds": 3, "learning_rates": [0.05, 0.3],
                    "train": {"steps": 300, "sharpness_every": 10}},
        "dtype": "float32",
        "metadata": {"example": "quickstart"},
    }


def run(client: landscope.Client, outdir: pathlib.Path) -> None:
    """Submit the sweep, wait with a progress bar, print the verdict and the runs."""
    done = submit_and_wait(client, _request())
    if done is None:
        return
    res = SweepResult.from_json(done.result)
    print(f"  claim      {res.claim_statement.text}")
    print(f"  source     {res.claim_statement.source}")
    print(f"  verdict    {res.verdict} ({res.held}/{res.seeds} seeds)")
    print(f"  detail     {res.detail}")
    lo, hi = res.effect.interval
    if res.effect.value is not None:
        print(f"  effect     {res.effect.name}: {res.effect.value:.3f} "
              f"[{lo if lo is None else round(lo, 3)}, {hi if hi is None else round(hi, 3)}]")
    for c in res.confounds:
        print(f"  confound   {c.name}{' (blocking)' if c.blocking else ''}: {c.detail}")
    for v in res.variants:
        ratios = ", ".join("-" if r.ratio is None else f"{r.ratio:.3f} ({r.status})"
                           for r in v.runs)
        print(f"  {v.name:<9} lambda_max/(2/eta) by seed: {ratios}")
