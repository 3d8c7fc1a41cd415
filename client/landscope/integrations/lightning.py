"""A Lightning callback that measures the landscape during training
(``pip install 'landscope[lightning]'``).

Every ``every_n_epochs`` epochs, on global rank 0 only, :class:`LandscopeCallback` takes a
CPU copy of the network's weights (at the epoch's end, between steps), and a background
thread uploads it and submits the configured kinds, then waits for their results. Results
are logged to the trainer's logger from the training thread, at the next batch end after
they arrive (``landscope/<kind>/<metric>``, at the step of the snapshot), so the training
step never waits for the service. The network is traced once (``from_module``, at the
first snapshot); later snapshots reuse the architecture and send only new weights.

Example:
    >>> cb = LandscopeCallback(  # doctest: +SKIP
    ...     landscope.Client(), example_input=torch.zeros(2, 3),
    ...     data=landscope.synthetic_data("teacher_student", num_samples=256, seed=0),
    ...     kinds={"hessian_spectrum": {"top_k": 5}}, every_n_epochs=5)
    >>> lightning.Trainer(callbacks=[cb]).fit(module)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from landscope._exceptions import LandscopeError
from landscope.integrations._training import Measured, Measurer

try:
    from lightning.pytorch import Callback
except ImportError as e:  # pragma: no cover - the extra is missing
    raise LandscopeError(
        "LandscopeCallback needs Lightning: pip install 'landscope[lightning]'.") from e

__all__ = ["LandscopeCallback", "Measured"]


def _default_module(pl_module: Any) -> Any:
    inner = getattr(pl_module, "model", None)
    return inner if inner is not None else pl_module


class LandscopeCallback(Callback):
    """Submit landscape jobs for training snapshots without blocking the training step.

    Args:
        client: a :class:`~landscope.Client`, used from the callback's one background
            thread only.
        example_input: a batch of inputs for tracing (only shape and dtype matter).
        data: the request's ``data`` (e.g. :func:`landscope.synthetic_data`, a blob).
        kinds: the kinds to run, with their options (``{"hessian_spectrum": {...}}``).
        every_n_epochs: snapshot after every N-th epoch.
        loss: the request's loss.
        module: picks the ``nn.Module`` to measure from the LightningModule (default: its
            ``model`` attribute when it has one, else the LightningModule itself).
        metadata: string pairs added to every job (the epoch and step are added too).
        log_prefix: prefix of the logged metric names.
        wait_timeout: seconds to wait for each result (None: as long as it takes).
        wait_at_end: at the end of training, wait for pending results and log them.
    """

    def __init__(self, client: Any, *, example_input: Any, data: Mapping[str, Any],
                 kinds: Mapping[str, Mapping[str, Any]] | None = None, every_n_epochs: int = 1,
                 loss: str = "mse", module: Callable[[Any], Any] | None = None,
                 metadata: Mapping[str, str] | None = None, log_prefix: str = "landscope",
                 wait_timeout: float | None = None, wait_at_end: bool = True) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}.")
        self.every_n_epochs = every_n_epochs
        self.module_fn = module or _default_module
        self.log_prefix = log_prefix
        self.wait_at_end = wait_at_end
        self._m = Measurer(client, example_input=example_input, data=data, kinds=kinds,
                           loss=loss, metadata=metadata, wait_timeout=wait_timeout)

    @property
    def measured(self) -> list[Measured]:
        """The measurements logged so far, in the order they finished."""
        return self._m.measured

    @property
    def errors(self) -> list[BaseException]:
        """Errors of submissions or waits (never raised into training)."""
        return self._m.errors

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.global_rank != 0 or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        self._m.snapshot_and_submit(self.module_fn(pl_module), int(trainer.current_epoch),
                                    int(trainer.global_step))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._drain(trainer)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._m.finish(wait=self.wait_at_end)
        self._drain(trainer)

    def _drain(self, trainer: Any) -> None:
        logger = trainer.logger
        self._m.drain(None if logger is None else
                      (lambda metrics, step: logger.log_metrics(metrics, step=step)),
                      self.log_prefix)
