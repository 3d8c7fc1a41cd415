"""Quickstart section: the minimizer manifold of a small tanh network (Cooper's theorem).

A 3-8-1 tanh MLP with biases has P = 41 parameters; fitted exactly to N = 10 points with
r = 1 output its zero-loss set should be a manifold of dimension P - rN = 31. The job
fits, measures P - rank(J), walks along the manifold, and draws the singular values of J
with the rank cut.
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
    x = [[rng.uniform(-1.0, 1.0) for _ in range(3)] for _ in range(10)]
    y = [[rng.gauss(0.0, 1.0)] for _ in range(10)]
    return {
        "kind": "minimizer_manifold",
        "model": {
            "architecture": {"type": "mlp", "input_dim": 3, "hidden": [8], "output_dim": 1,
                             "activation": "tanh", "bias": True},
            "init_seed": 0,
        },
        "data": {"inline": {"x": x, "y": y}},
        "loss": "mse",
        "options": {"walk_steps": 5, "walk_step_length": 0.05},
        "device": "auto",
        "dtype": "float64",
        "seed": 0,
        "metadata": {"example": "quickstart"},
    }


def run(client: landscope.Client, outdir: pathlib.Path) -> None:
    """Submit the job, wait with a progress bar, print the comparison, save the plot."""
    done = submit_and_wait(client, _request())
    if done is None:
        return
    res = done.result
    fit, rank, dim, walk = res["fit"], res["rank"], res["dimension"], res["walk"]
    print(f"  P = {res['num_params']}, rN = {res['num_equations']} ({res['route']} route)")
    print(f"  fit           {fit['message']}")
    print(f"  rank(J)       {rank['rank']}   rule: {rank['rule']}")
    print(f"  dimension     predicted P - rN = {dim['predicted']}, "
          f"measured P - rank(J) = {dim['measured']}, Hessian nullity = "
          f"{dim['hessian_nullity']}, agrees: {dim['agrees']}")
    if walk.get("performed"):
        ctrl = walk.get("control") or {}
        print(f"  walk          {walk['steps_done']} steps, path {walk['path_length']:.3g}, "
              f"max loss {walk['max_loss']:.2e}; orthogonal control step: loss "
              f"{ctrl.get('loss_after', float('nan')):.2e}")
    theory = res["theory"]
    print(f"  theory        {theory['theorem']}: applies {theory['applies']}, "
          f"agrees {theory['agrees']}")
    for note in theory["notes"]:
        print(f"                - {note}")
    names = {a.name for a in done.artifacts}
    if "singular_values.png" in names:
        path = outdir / "minimizer_manifold_singular_values.png"
        path.write_bytes(client.jobs.artifact(done.id, "singular_values.png"))
        print(f"  plot          {path}")
