"""LandscopeTrainerCallback in a real Hugging Face Trainer run of 3 epochs on a tiny
model, against the real API served in-process (``liveapi``; jobs finished at once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from liveapi import API_KEY, LiveAPI, succeeded
from torch import nn

import landscope

transformers = pytest.importorskip("transformers")
from landscope.integrations.huggingface import LandscopeTrainerCallback  # noqa: E402


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(x)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


def test_trainer_callback_measures_each_epoch(live_api: LiveAPI, tmp_path: Path) -> None:
    live_api.on_submit = lambda job_id: live_api.apply(job_id, succeeded({"sharpness": 1.5}))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, generator=g)
    rows = [{"x": x[i], "labels": x[i, :1] * x[i, 1:2]} for i in range(32)]
    logged: list[tuple[dict[str, float], int]] = []
    with landscope.Client(live_api.url, api_key=API_KEY) as client:
        cb = LandscopeTrainerCallback(
            client, example_input=torch.zeros(2, 3), module=lambda m: m.net,
            data=landscope.synthetic_data("teacher_student", num_samples=16, seed=0),
            kinds={"hessian_spectrum": {"top_k": 2}},
            log=lambda metrics, step: logged.append((metrics, step)))
        args = transformers.TrainingArguments(
            output_dir=str(tmp_path), num_train_epochs=3, per_device_train_batch_size=8,
            report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no",
            disable_tqdm=True)
        trainer = transformers.Trainer(model=Tiny(), args=args, train_dataset=rows,
                                       callbacks=[cb])
        trainer.train()
    assert cb.errors == []
    assert [(m.epoch, m.kind, m.job.status) for m in cb.measured] == \
        [(e, "hessian_spectrum", "succeeded") for e in range(3)]
    assert [s for _, s in logged] == [4, 8, 12]  # 4 steps an epoch
    assert all(m["landscope/hessian_spectrum/sharpness"] == 1.5 for m, _ in logged)
    history = [h for h in trainer.state.log_history if "landscope/hessian_spectrum/sharpness" in h]
    assert [h["step"] for h in history] == [4, 8, 12]
    assert len(live_api.calls("POST", "/v1/jobs")) == 3


def test_rank_nonzero_and_bad_period(live_api: LiveAPI) -> None:
    class State:
        is_world_process_zero, global_step = False, 3
        log_history: ClassVar[list[Any]] = []

    with landscope.Client(live_api.url, api_key=API_KEY) as client:
        cb = LandscopeTrainerCallback(client, example_input=torch.zeros(2, 3), data={})
        cb.on_epoch_end(None, State(), None, model=Tiny().net)
        cb.on_train_end(None, State(), None)
    assert cb.measured == [] and live_api.calls("POST", "/v1/jobs") == []
    with pytest.raises(ValueError, match="every_n_epochs"):
        LandscopeTrainerCallback(None, example_input=None, data={}, every_n_epochs=0)
