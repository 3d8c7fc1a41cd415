"""Quickstart section: level-set connectivity of a small ReLU network.

Four minima of a 2-6-1 ReLU MLP are trained by the service from seeds (one subtask
each); every pair gets a linear path, the merge-tree edges an AutoNEB path, and the
barriers (upper bounds on the minimax barriers) give N_lambda, the number of components
of {theta : L(theta) <= lambda} holding the minima, over a lambda grid. Alignment of
hidden units also reports the counts modulo permutation.
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
    x = [[rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)] for _ in range(24)]
    y = [[abs(a) - abs(b)] for a, b in x]
    return {
        "kind": "level_set_connectivity",
        "model": {
            "architecture": {"type": "mlp", "input_dim": 2, "hidden": [6], "output_dim": 1,
                             "activation": "relu", "bias": True},
            "init_seed": 0,
        },
        "data": {"inline": {"x": x, "y": y}},
        "loss": "mse",
        "options": {
            "num_trained": 4,
            "train": {"optimizer": "adam", "steps": 400, "lr": 0.02},
            "paths": {"methods": ["neb"], "neb": {"cycles": 3, "steps": 100}},
            "align": True,
            "lambda_grid_size": 12,
        },
        "device": "auto",
        "dtype": "float64",
        "seed": 0,
        "metadata": {"example": "quickstart"},
    }


def run(client: landscope.Client, outdir: pathlib.Path) -> None:
    """Submit the job, wait with a progress bar, print N_lambda, save the two plots."""
    done = submit_and_wait(client, _request())
    if done is None:
        return
    res = done.result
    ps = res["parameter_space"]
    mp = res.get("modulo_permutation")
    print(f"  {res['num_minima']} minima, losses "
          + ", ".join(f"{m['loss']:.3g}" for m in res["minima"]))
    print("  barriers are upper bounds on the minimax barriers"
          if res["barriers_are_upper_bounds"] else "")
    print(f"  {'lambda':>10}  N_lambda" + ("  modulo permutation" if mp else ""))
    for k, lam in enumerate(res["lambda_grid"]):
        extra = f"  {mp['n_lambda'][k]:>8}" if mp else ""
        print(f"  {lam:>10.4g}  {ps['n_lambda'][k]:>8}{extra}")
    print("  merge heights: " + ", ".join(f"{h:.4g}" for h in ps["merge_heights"] if h is not None))
    venturi = res["theory"]["two_layer_relu_scale"]
    if venturi["applies"]:
        print(f"  two-layer ReLU: predicted excess scale m^(-1/n) = "
              f"{venturi['predicted_excess_scale']:.3g}, measured largest excess barrier "
              f"{venturi['measured']['max_excess_barrier']:.3g}")
    outdir.mkdir(parents=True, exist_ok=True)
    for name in ("merge_tree.png", "path_profiles.png"):
        path = outdir / f"level_set_connectivity_{name}"
        path.write_bytes(client.jobs.artifact(done.id, name))
        print(f"  wrote {path}")
