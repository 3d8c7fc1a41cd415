"""A :class:`~landscope_service.diagnostics.problem.Problem` whose data stay on disk.

The data set is read one batch at a time from a :class:`BatchSource` (the service's
memory-mapped files), so memory holds one batch (on the device) at a time, not the data
set. ``x`` and ``y`` of the problem are tensors on the ``meta`` device: they carry the
shapes (``N`` and one sample's shape) without storage, so code that would read the whole
data set at once fails loudly instead of loading it.

Every loss, gradient and curvature product of the core runs through
:meth:`Problem.batches`, so the results equal those of the same data held in memory:
``sum_b (|b| / N) f(x_b, y_b)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from .problem import Problem

__all__ = ["DEFAULT_STREAM_BATCH", "BatchSource", "StreamingProblem"]

DEFAULT_STREAM_BATCH = 1024
"""Batch size of a streamed data set whose request gives none."""


class BatchSource(Protocol):
    """Reads samples ``[start, stop)`` as tensors on a device."""

    def __len__(self) -> int:
        """N, the number of samples."""
        ...

    def read(self, start: int, stop: int, *, device: torch.device,
             dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``(x_b, y_b)``: x of ``dtype`` (any declared transform applied), y of ``dtype``
        (mse) or long (cross_entropy)."""
        ...


@dataclass
class StreamingProblem(Problem):
    """A problem whose batches come from ``source`` (see the module doc).

    ``x`` and ``y`` must be ``meta`` tensors of the data set's shapes; build with
    :meth:`from_source`.
    """

    source: BatchSource | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source is None:
            raise TypeError("StreamingProblem needs a source.")
        if self.x.device.type != "meta" or self.y.device.type != "meta":
            raise ValueError("StreamingProblem's x and y are shapes only (device 'meta').")
        if len(self.source) != self.num_samples:
            raise ValueError(f"Shape mismatch: the source has {len(self.source)} samples, "
                             f"x has {self.num_samples}.")

    @classmethod
    def from_source(cls, source: BatchSource, *, sample_shape: tuple[int, ...],
                    target_shape: tuple[int, ...], **kwargs: object) -> StreamingProblem:
        """The problem over ``source``; ``target_shape`` is one target's shape (``()`` for
        class labels). Other keyword arguments are :class:`Problem`'s."""
        n = len(source)
        if kwargs.get("batch_size") is None:
            kwargs["batch_size"] = DEFAULT_STREAM_BATCH
        x = torch.empty((n, *sample_shape), device="meta")
        y = torch.empty((n, *target_shape), device="meta",
                        dtype=torch.long if not target_shape else torch.float32)
        return cls(x=x, y=y, source=source, **kwargs)  # type: ignore[arg-type]

    def batches(self) -> Iterator[tuple[Tensor, Tensor, float]]:
        """Yield ``(x_b, y_b, |b| / N)``, each batch read from the source on demand."""
        if self.source is None:  # pragma: no cover  (checked at construction)
            raise TypeError("StreamingProblem needs a source.")
        n = self.num_samples
        bs = self._batch_len()
        for start in range(0, n, bs):
            stop = min(start + bs, n)
            xb, yb = self.source.read(start, stop, device=self.device, dtype=self.dtype)
            yield xb, yb, (stop - start) / n
