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

import queue
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from landscope._exceptions import LandscopeError
from landscope.integrations._common import flat_metrics
from landscope.spec import JobRequest, ModelSpec
from landscope.types import Job

try:
    from lightning.pytorch import Callback
except ImportError as e:  # pragma: no cover - the extra is missing
    raise LandscopeError(
        "LandscopeCallback needs Lightning: pip install 'landscope[lightning]'.") from e

__all__ = ["LandscopeCallback", "Measured"]


@dataclass(frozen=True)
class Measured:
    """One finished measurement: the snapshot's epoch and step, the kind, the job."""

    epoch: int
    step: int
    kind: str
    job: Job


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
        self.client = client
        self.example_input = example_input
        self.data = dict(data)
        self.kinds = {k: dict(v) for k, v in (kinds or {"hessian_spectrum": {}}).items()}
        self.every_n_epochs = every_n_epochs
        self.loss = loss
        self.module_fn = module or _default_module
        self.metadata = dict(metadata or {})
        self.log_prefix = log_prefix
        self.wait_timeout = wait_timeout
        self.wait_at_end = wait_at_end
        self.measured: list[Measured] = []
        self.errors: list[BaseException] = []
        self._spec: ModelSpec | None = None
        self._used: tuple[str, ...] = ()
        self._done: queue.SimpleQueue[Measured | BaseException] = queue.SimpleQueue()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ hooks
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.global_rank != 0 or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        spec = self._snapshot(self.module_fn(pl_module))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="landscope")
        epoch, step = int(trainer.current_epoch), int(trainer.global_step)
        self._pending.append(self._pool.submit(self._measure, spec, epoch, step))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._drain(trainer)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.wait_at_end:
            for fut in self._pending:
                fut.result()
        self._drain(trainer)
        if self._pool is not None:
            self._pool.shutdown(wait=self.wait_at_end)
            self._pool = None

    # ------------------------------------------------------------------ internals
    def _snapshot(self, module: Any) -> ModelSpec:
        """The architecture (traced once) with a CPU copy of the current weights."""
        from landscope._torch import state_dict_to_safetensors

        if self._spec is None:
            from landscope.from_module import from_module

            was_training = module.training
            try:
                self._spec = from_module(module, self.example_input)
            finally:
                module.train(was_training)
            self._used = _safetensors_keys(self._spec.weights)
            return self._spec
        state = module.state_dict()
        weights = {k: state[k].detach().to("cpu", copy=True) for k in self._used}
        return ModelSpec(architecture=self._spec.architecture,
                         weights=state_dict_to_safetensors(weights), unused=self._spec.unused)

    def _measure(self, spec: ModelSpec, epoch: int, step: int) -> None:
        for kind, options in self.kinds.items():
            try:
                job = self.client.jobs.submit(JobRequest(
                    kind=kind, model=spec, data=self.data, loss=self.loss, options=options,
                    metadata={**self.metadata, "epoch": str(epoch), "step": str(step)}))
                job = self.client.jobs.wait(job, timeout=self.wait_timeout)
                self._done.put(Measured(epoch=epoch, step=step, kind=kind, job=job))
            except BaseException as e:  # reported, never raised into training
                self._done.put(e)

    def _drain(self, trainer: Any) -> None:
        while True:
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, BaseException):
                self.errors.append(item)
                continue
            self.measured.append(item)
            if item.job.status != "succeeded" or trainer.logger is None:
                continue
            metrics = {f"{self.log_prefix}/{item.kind}/{k}": v
                       for k, v in flat_metrics(item.job.result or {}).items()}
            if metrics:
                trainer.logger.log_metrics(metrics, step=item.step)


def _safetensors_keys(data: bytes) -> tuple[str, ...]:
    """The tensor names in a safetensors file's header (8-byte length, then JSON)."""
    import json
    import struct

    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    return tuple(k for k in header if k != "__metadata__")
