"""Log a landscope result to Weights & Biases (``pip install 'landscope[wandb]'``).

Example:
    >>> import wandb
    >>> from landscope.integrations.wandb import log_result
    >>> run = wandb.init(project="landscape")  # doctest: +SKIP
    >>> log_result(job, run=run, client=client)  # doctest: +SKIP
"""

from __future__ import annotations

import io
from typing import Any

from landscope._exceptions import LandscopeError
from landscope.integrations._common import Logged, prepare

__all__ = ["log_result", "tables"]


def _wandb() -> Any:
    try:
        import wandb
    except ImportError as e:
        raise LandscopeError("log_result needs wandb: pip install 'landscope[wandb]'.") from e
    return wandb


def _cell(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def tables(result: dict[str, Any]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The result's tabular parts as ``name -> (columns, rows)``: the merge tree's merges
    (level_set_connectivity) and the spectral density (hessian_spectrum)."""
    out: dict[str, tuple[list[str], list[list[Any]]]] = {}
    space = result.get("parameter_space")
    if isinstance(space, dict):
        merges = (space.get("merge_tree") or {}).get("merges") or []
        if merges:
            cols = sorted({k for m in merges for k in m})
            out["merge_tree"] = (cols, [[_cell(m.get(c)) for c in cols] for m in merges])
        grid, n = result.get("lambda_grid"), space.get("n_lambda")
        if isinstance(grid, list) and isinstance(n, list):
            out["n_lambda"] = (["lambda", "n_lambda"], [list(r) for r in zip(grid, n,
                                                                               strict=False)])
    density = result.get("density")
    if isinstance(density, dict):
        grid, values = density.get("grid"), density.get("values")
        if isinstance(grid, list) and isinstance(values, list):
            out["density"] = (["lambda", "density"], [list(r) for r in zip(grid, values,
                                                                             strict=False)])
    return out


def log_result(result: Any, run: Any = None, *, client: Any = None,
               prefix: str = "landscope", step: int | None = None) -> Logged:
    """Log a result to a W&B run (default: ``wandb.run``, the active one).

    Scalar metrics under sanitised keys, the request into the run's config, the
    merge-tree and density data as ``wandb.Table``s, a job's PNG figures as images.

    Raises:
        LandscopeError: wandb is missing, or there is no run.
    """
    wandb = _wandb()
    run = run if run is not None else wandb.run
    if run is None:
        raise LandscopeError("No W&B run: pass run=wandb.init(...) or call wandb.init first.")
    logged = prepare(result, client=client, prefix=prefix)
    payload: dict[str, Any] = dict(logged.metrics)
    for name, (cols, rows) in tables(logged.result).items():
        payload[f"{prefix}.{name}"] = wandb.Table(columns=cols, data=rows)
    for name, data in logged.figures.items():
        if name.endswith(".png"):
            from PIL import Image

            payload[f"{prefix}.figures.{name}"] = wandb.Image(Image.open(io.BytesIO(data)))
    if logged.params:
        run.config.update(logged.params, allow_val_change=True)
    run.log(payload, step=step)
    return logged
