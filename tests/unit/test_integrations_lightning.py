"""LandscopeCallback in a real Lightning run of 3 epochs on a tiny model, against the
real API served in-process (``liveapi``; each submitted job is finished as a worker
would). Each epoch's snapshot is measured and logged, and the callback never blocks a
training step: the test holds the first submission unanswered until training has run
every step, so a callback that submitted or waited on the training thread would stall
(no wall-clock bound: the step times are printed, not asserted).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import torch
from liveapi import API_KEY, LiveAPI, succeeded
from torch import nn

import landscope

lightning = pytest.importorskip("lightning")
from lightning.pytorch import Callback, LightningModule, Trainer  # noqa: E402
from lightning.pytorch.loggers.logger import Logger  # noqa: E402

from landscope.integrations.lightning import LandscopeCallback  # noqa: E402

HESSIAN_RESULT = {"sharpness": 2.5, "lambda_min": -0.1, "status": "converged",
                  "top": {"eigenvalues": [2.5, 1.0]}}


class Tiny(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.model(x), y)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.05)


class StepTimer(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._t0 = 0.0

    def on_train_batch_start(self, *args: Any) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, *args: Any) -> None:
        self.times.append(time.perf_counter() - self._t0)


class Recorder(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.logged: list[tuple[dict[str, float], int | None]] = []

    @property
    def name(self) -> str:
        return "recorder"

    @property
    def version(self) -> str:
        return "0"

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.logged.append((dict(metrics), step))

    def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
        pass


def _loader() -> Any:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    ds = torch.utils.data.TensorDataset(x, x[:, :1] * x[:, 1:2])
    return torch.utils.data.DataLoader(ds, batch_size=8)


def _fit(callbacks: list[Any], logger: Any, timer: StepTimer | None = None) -> StepTimer:
    torch.manual_seed(0)
    timer = timer or StepTimer()
    trainer = Trainer(max_epochs=3, callbacks=[timer, *callbacks], logger=logger,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", devices=1)
    trainer.fit(Tiny(), _loader())
    return timer


def test_callback_measures_each_epoch_without_slowing_steps(live_api: LiveAPI) -> None:
    live_api.on_submit = lambda job_id: live_api.apply(job_id, succeeded(HESSIAN_RESULT))
    data = landscope.synthetic_data("teacher_student", num_samples=16, seed=0)
    with landscope.Client(live_api.url, api_key=API_KEY) as client:
        # The API runs in this process (one GIL): its first submit of a graph model pays
        # ~1.5 s of one-off imports and set-up that would land in whatever step is running.
        # A deployed service is another process; pay that cost here before timing.
        client.jobs.submit(landscope.JobRequest(
            kind="hessian_spectrum", data=data, options={"top_k": 2},
            model=landscope.from_module(Tiny().model, torch.zeros(2, 3))))
    baseline = _fit([], Recorder())
    with landscope.Client(live_api.url, api_key=API_KEY) as client:
        cb = LandscopeCallback(
            client, example_input=torch.zeros(2, 3),
            data=data, kinds={"hessian_spectrum": {"top_k": 2}}, every_n_epochs=1)
        logger = Recorder()
        timed = _fit([cb], logger)
    assert cb.errors == []
    assert [(m.epoch, m.kind, m.job.status) for m in cb.measured] == \
        [(e, "hessian_spectrum", "succeeded") for e in range(3)]
    print(f"slowest step: {max(timed.times) * 1e3:.1f} ms with the callback, "
          f"{max(baseline.times) * 1e3:.1f} ms without")
    submitted = live_api.calls("POST", "/v1/jobs")
    assert len(submitted) == 1 + 3  # the warm-up, then one per epoch
    ours = [(m, s) for m, s in logger.logged if "landscope/hessian_spectrum/sharpness" in m]
    assert [s for _, s in ours] == [m.step for m in cb.measured]
    assert all(m["landscope/hessian_spectrum/sharpness"] == 2.5 for m, _ in ours)


def test_callback_never_blocks_a_training_step(live_api: LiveAPI) -> None:
    steps = 3 * 8  # 3 epochs of 8 batches
    timer = StepTimer()
    first = threading.Event()
    stalled: list[int] = []

    def hold_first(job_id: str) -> None:
        # The first submission is answered only once training has run every step. A
        # callback that submitted on the training thread would stall training here.
        if not first.is_set():
            first.set()
            deadline = time.monotonic() + 120
            while len(timer.times) < steps:
                if time.monotonic() > deadline:
                    stalled.append(len(timer.times))
                    break
                time.sleep(0.005)
        live_api.apply(job_id, succeeded(HESSIAN_RESULT))

    live_api.on_submit = hold_first
    data = landscope.synthetic_data("teacher_student", num_samples=16, seed=0)
    with landscope.Client(live_api.url, api_key=API_KEY) as client:
        cb = LandscopeCallback(
            client, example_input=torch.zeros(2, 3),
            data=data, kinds={"hessian_spectrum": {"top_k": 2}}, every_n_epochs=1)
        _fit([cb], Recorder(), timer)
    assert first.is_set(), "the callback never submitted"
    assert stalled == [], f"training stalled after {stalled[0]} of {steps} steps"
    assert len(timer.times) == steps
    assert cb.errors == []


def test_only_global_rank_zero_submits(live_api: LiveAPI) -> None:
    class Rank1:
        global_rank, current_epoch, global_step, logger = 1, 0, 10, None

    with landscope.Client(live_api.url, api_key=API_KEY) as client:
        cb = LandscopeCallback(client, example_input=torch.zeros(2, 3),
                               data={"synthetic": {"name": "teacher_student", "seed": 0}})
        cb.on_train_epoch_end(Rank1(), Tiny())
        cb.on_train_end(Rank1(), Tiny())
    assert cb.measured == [] and live_api.calls("POST", "/v1/jobs") == []
    with pytest.raises(ValueError, match="every_n_epochs"):
        LandscopeCallback(None, example_input=None, data={}, every_n_epochs=0)
