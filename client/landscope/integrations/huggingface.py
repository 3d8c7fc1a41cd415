"""A Hugging Face ``TrainerCallback`` that measures the landscape during training
(``pip install 'landscope[huggingface]'``).

The same as :class:`landscope.integrations.lightning.LandscopeCallback`: every
``every_n_epochs`` epochs, on the main process only (``state.is_world_process_zero``), a
CPU copy of the model's weights is taken at the epoch's end and a background thread
submits the configured kinds and waits; finished results are added to
``state.log_history`` (``landscope/<kind>/<metric>`` with the snapshot's ``step``) and
passed to ``log`` when given, from the training thread at the next step end.

Example:
    >>> cb = LandscopeTrainerCallback(  # doctest: +SKIP
    ...     landscope.Client(), example_input=torch.zeros(2, 3),
    ...     data=landscope.synthetic_data("teacher_student", num_samples=256, seed=0),
    ...     kinds={"hessian_spectrum": {"top_k": 5}})
    >>> transformers.Trainer(model=model, args=args, callbacks=[cb]).train()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from landscope._exceptions import LandscopeError
from landscope.integrations._training import Measured, Measurer

try:
    from transformers import TrainerCallback
except ImportError as e:  # pragma: no cover - the extra is missing
    raise LandscopeError(
        "LandscopeTrainerCallback needs transformers: pip install 'landscope[huggingface]'."
    ) from e

__all__ = ["LandscopeTrainerCallback", "Measured"]


class LandscopeTrainerCallback(TrainerCallback):
    """Submit landscape jobs for training snapshots without blocking the training step.

    Args:
        client: a :class:`~landscope.Client` (used from one background thread).
        example_input: a batch of inputs for tracing (only shape and dtype matter).
        data: the request's ``data``.
        kinds: the kinds to run, with their options.
        every_n_epochs: snapshot after every N-th epoch.
        loss: the request's loss.
        module: picks the ``nn.Module`` to measure from the Trainer's model (default: the
            model itself).
        metadata: string pairs added to every job.
        log: also called as ``log(metrics, step)`` for each finished result.
        log_prefix: prefix of the metric names.
        wait_timeout: seconds to wait for each result.
        wait_at_end: at the end of training, wait for pending results and record them.
    """

    def __init__(self, client: Any, *, example_input: Any, data: Mapping[str, Any],
                 kinds: Mapping[str, Mapping[str, Any]] | None = None, every_n_epochs: int = 1,
                 loss: str = "mse", module: Callable[[Any], Any] | None = None,
                 metadata: Mapping[str, str] | None = None,
                 log: Callable[[dict[str, float], int], None] | None = None,
                 log_prefix: str = "landscope", wait_timeout: float | None = None,
                 wait_at_end: bool = True) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}.")
        self.every_n_epochs = every_n_epochs
        self.module_fn = module or (lambda m: m)
        self.log = log
        self.log_prefix = log_prefix
        self.wait_at_end = wait_at_end
        self._epochs = 0
        self._m = Measurer(client, example_input=example_input, data=data, kinds=kinds,
                           loss=loss, metadata=metadata, wait_timeout=wait_timeout)

    @property
    def measured(self) -> list[Measured]:
        return self._m.measured

    @property
    def errors(self) -> list[BaseException]:
        return self._m.errors

    def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None,
                     **kwargs: Any) -> None:
        self._epochs += 1
        if not state.is_world_process_zero or model is None or \
                self._epochs % self.every_n_epochs:
            return
        self._m.snapshot_and_submit(self.module_fn(model), self._epochs - 1,
                                    int(state.global_step))

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._drain(state)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._m.finish(wait=self.wait_at_end)
        self._drain(state)

    def _drain(self, state: Any) -> None:
        def record(metrics: dict[str, float], step: int) -> None:
            state.log_history.append({**metrics, "step": step})
            if self.log is not None:
                self.log(metrics, step)

        self._m.drain(record, self.log_prefix)
