"""Log a landscope result to MLflow (``pip install 'landscope[mlflow]'``).

Example:
    >>> import mlflow
    >>> from landscope.integrations.mlflow import log_result
    >>> job = client.jobs.wait(client.jobs.submit(request))  # doctest: +SKIP
    >>> with mlflow.start_run():  # doctest: +SKIP
    ...     log_result(job, client=client)
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from landscope._exceptions import LandscopeError
from landscope.integrations._common import Logged, prepare

__all__ = ["log_result"]


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as e:
        raise LandscopeError("log_result needs mlflow: pip install 'landscope[mlflow]'.") from e
    return mlflow


def log_result(result: Any, run_id: str | None = None, *, client: Any = None,
               prefix: str = "landscope", step: int | None = None) -> Logged:
    """Log a result to an MLflow run.

    Scalar metrics go under sanitised keys (``landscope.sharpness``,
    ``landscope.top.eigenvalues.0``), the request as parameters (inline data left out)
    and as ``landscope/request.json``, the result as ``landscope/result.json``, and a
    job's figures (image artifacts, with ``client``) under ``landscope/figures/``.

    Args:
        result: a finished :class:`~landscope.Job`, a typed result or a result mapping.
        run_id: the run to log to (default: the active run, or a new one).
        client: a :class:`~landscope.Client` to fetch the job's figures with.
        prefix: key prefix.
        step: the metrics' step.

    Returns:
        What was logged.
    """
    mlflow = _mlflow()
    logged = prepare(result, client=client, prefix=prefix)
    active = mlflow.active_run()
    if run_id is not None and (active is None or active.info.run_id != run_id):
        with mlflow.start_run(run_id=run_id):
            _log(mlflow, logged, step)
    elif active is not None:
        _log(mlflow, logged, step)
    else:
        with mlflow.start_run():
            _log(mlflow, logged, step)
    return logged


def _log(mlflow: Any, logged: Logged, step: int | None) -> None:
    if logged.metrics:
        mlflow.log_metrics(logged.metrics, step=step)
    if logged.params:
        mlflow.log_params(logged.params)
    if logged.request:
        mlflow.log_dict(logged.request, "landscope/request.json")
    mlflow.log_dict(logged.result, "landscope/result.json")
    if logged.figures:
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in logged.figures.items():
                path = Path(tmp) / Path(name).name
                path.write_bytes(data)
                mlflow.log_artifact(str(path), artifact_path="landscope/figures")
