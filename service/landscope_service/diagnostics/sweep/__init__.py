"""``sweep``: claims of THEORY.md section 4 tested on the caller's problem, with verdicts.

Modules: :mod:`.train` (full-batch GD with warm-started lambda_max tracking),
:mod:`.variants` (variants derived from the base network by stated rules, seeded init),
:mod:`.verdict` (bootstrap intervals, the three-way verdict), :mod:`.runner` (the claims,
their pieces and ``run_sweep``).
"""
