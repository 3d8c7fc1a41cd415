"""The SDK reads a sharded job's ``parallel`` block from real runner results (evaluate and
hessian_spectrum over 2 shards), and an unsharded result as ``parallel=None``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from landscope.kinds._read import read
from landscope.kinds.evaluate import EvaluateResult
from landscope.kinds.hessian_spectrum import HessianSpectrumResult
from landscope_service.diagnostics import RunContext, run_evaluate, run_hessian_spectrum
from landscope_service.modelspec.build import build_problem
from landscope_service.modelspec.schemas import DataSchema


def _problem() -> Any:
    rng = np.random.default_rng(0)
    req = {"kind": "evaluate",
           "model": {"architecture": {"type": "mlp", "input_dim": 2, "hidden": [3],
                                      "output_dim": 1, "activation": "tanh", "bias": True},
                     "init_seed": 0},
           "data": DataSchema().load({"inline": {"x": rng.normal(size=(9, 2)).tolist(),
                                                 "y": rng.normal(size=(9, 1)).tolist()}}),
           "loss": "mse", "dtype": "float64", "batch_size": 2}
    return build_problem(req, lambda b: b"", device=torch.device("cpu"), dtype=torch.float64)


def _json(result: dict[str, Any]) -> Any:
    return json.loads(json.dumps(result))


def test_parallel_blocks_read_from_runner_results() -> None:
    problem = _problem()
    ev = read(EvaluateResult, _json(run_evaluate(
        problem, {"parallel": {"shards": 2}}, RunContext()).result))
    assert ev.parallel is not None
    assert [s.samples for s in ev.parallel.shards] == [(0, 4), (4, 9)]  # 5 batches: 2 + 3
    assert all(":" in s.ran_on for s in ev.parallel.shards)
    assert read(EvaluateResult, _json(run_evaluate(problem, {}, RunContext()).result)
                ).parallel is None
    opts = {"mode": "iterative", "top_k": 1, "bottom_k": 0, "trace": False,
            "density": False, "parallel": {"shards": 2}}
    hs = read(HessianSpectrumResult, _json(run_hessian_spectrum(problem, opts,
                                                                 RunContext()).result))
    assert hs.parallel is not None and len(hs.parallel.shards) == 2
