"""The part of the training callbacks that does not depend on the framework: snapshots
of the weights (architecture traced once), a background thread that submits and waits,
and a queue of finished measurements drained from the training thread."""

from __future__ import annotations

import queue
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from landscope.integrations._common import flat_metrics
from landscope.spec import JobRequest, ModelSpec
from landscope.types import Job

__all__ = ["Measured", "Measurer"]


@dataclass(frozen=True)
class Measured:
    """One finished measurement: the snapshot's epoch and step, the kind, the job."""

    epoch: int
    step: int
    kind: str
    job: Job


class Measurer:
    """Snapshots, background submissions and the queue of results (see the callbacks)."""

    def __init__(self, client: Any, *, example_input: Any, data: Mapping[str, Any],
                 kinds: Mapping[str, Mapping[str, Any]] | None, loss: str,
                 metadata: Mapping[str, str] | None, wait_timeout: float | None) -> None:
        self.client = client
        self.example_input = example_input
        self.data = dict(data)
        self.kinds = {k: dict(v) for k, v in (kinds or {"hessian_spectrum": {}}).items()}
        self.loss = loss
        self.metadata = dict(metadata or {})
        self.wait_timeout = wait_timeout
        self.measured: list[Measured] = []
        self.errors: list[BaseException] = []
        self._spec: ModelSpec | None = None
        self._used: tuple[str, ...] = ()
        self._done: queue.SimpleQueue[Measured | BaseException] = queue.SimpleQueue()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []

    def snapshot_and_submit(self, module: Any, epoch: int, step: int) -> None:
        """Copy the weights now (in the caller's thread); measure in the background."""
        spec = self._snapshot(module)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="landscope")
        self._pending.append(self._pool.submit(self._measure, spec, epoch, step))

    def drain(self, log: Callable[[dict[str, float], int], None] | None,
              prefix: str) -> None:
        """Log the measurements finished so far (never waits)."""
        while True:
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, BaseException):
                self.errors.append(item)
                continue
            self.measured.append(item)
            if item.job.status != "succeeded" or log is None:
                continue
            metrics = {f"{prefix}/{item.kind}/{k}": v
                       for k, v in flat_metrics(item.job.result or {}).items()}
            if metrics:
                log(metrics, item.step)

    def finish(self, wait: bool) -> None:
        if wait:
            for fut in self._pending:
                fut.result()
        if self._pool is not None:
            self._pool.shutdown(wait=wait)
            self._pool = None

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


def _safetensors_keys(data: bytes) -> tuple[str, ...]:
    """The tensor names in a safetensors file's header (8-byte length, then JSON)."""
    import json
    import struct

    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    return tuple(k for k in header if k != "__metadata__")
