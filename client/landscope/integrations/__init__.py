"""Optional integrations: experiment trackers and training callbacks.

Each module imports its library when used (extras ``mlflow``, ``wandb``, ``lightning``),
so ``import landscope`` needs none of them:

* :mod:`landscope.integrations.mlflow`: ``log_result(result, run_id=None)``;
* :mod:`landscope.integrations.wandb`: ``log_result(result, run=None)``;
* :mod:`landscope.integrations.lightning`: ``LandscopeCallback``.
"""
