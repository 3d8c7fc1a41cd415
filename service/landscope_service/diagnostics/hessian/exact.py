"""Exact mode: the dense Hessian and its full eigendecomposition for small models.

The dense Hessian is assembled from blocked Hessian-vector products: ``H E_j`` for blocks
``E_j`` of identity columns, each product the same full-data product the iterative mode
uses (:func:`.hvp.make_hvp`). A block costs ``block_size`` products, progress is
reported and cancellation checked after every block, and memory stays bounded by the
``(P, P)`` result plus one block's products (each accumulated batch by batch), instead
of differentiating twice in reverse mode over the whole batch at once.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from ..monitor import Monitor
from ..problem import Problem
from .hvp import make_hvp, resolve_variant

__all__ = [
    "DENSE_MEMORY_BYTES",
    "EXACT_CANDIDATES",
    "dense_hessian",
    "dense_hessian_bytes",
    "exact_spectrum",
]

BLOCK_SECONDS = 1.0
"""Once the variant is chosen, a block holds at most about this many seconds of products,
so progress and cancellation checks come at least this often (fewer columns per block
for slow products, never fewer than one)."""

DENSE_MEMORY_BYTES = 4 << 30
"""Largest dense Hessian (``P * P`` numbers of the problem's dtype) exact mode builds."""

EXACT_CANDIDATES = ("double_backward", "vmap_forward_over_reverse")
"""The product variants ``variant="auto"`` times on the first blocks: the graph-reusing
double backward, one column at a time, and the vmapped forward-over-reverse product over
a whole block of columns. Which is faster depends on the model, the data and the device
(on CPU the per-call overhead of small models favours the vmapped blocks)."""


def dense_hessian_bytes(num_params: int, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of the dense ``(P, P)`` Hessian (the dominant memory of exact mode)."""
    return int(num_params) ** 2 * torch.empty((), dtype=dtype).element_size()


def dense_hessian(
    problem: Problem,
    *,
    block_size: int = 16,
    variant: str = "auto",
    monitor: Monitor | None = None,
    max_bytes: int = DENSE_MEMORY_BYTES,
) -> Tensor:
    """The dense ``(P, P)`` Hessian of the full-data loss, ``sum_b w_b d^2 L_b``, symmetrised.

    Column block ``j`` is ``H E_j`` with ``E_j`` the identity columns
    ``[j * block_size, (j + 1) * block_size)``, computed with the Hessian-vector products of
    :func:`.hvp.make_hvp` (accumulated over the problem's batches). ``P`` products in all.

    Args:
        problem: model, parameters (their device and dtype are used), data and loss.
        block_size: identity columns per block (products between progress reports and
            cancellation checks); lowered after the first blocks so that a block takes
            about :data:`BLOCK_SECONDS` at most.
        variant: a product variant of :data:`.hvp.HVP_VARIANTS`; ``"auto"`` times the
            first block with each of :data:`EXACT_CANDIDATES` and keeps the faster (both
            blocks' columns are used, so no product is wasted).
        monitor: receives ``("dense_hessian", columns_done / P, ...)`` after every block
            and is checked for cancellation before every block.
        max_bytes: refuse to build a matrix larger than this.

    Returns:
        ``0.5 * (H + H^T)`` in the problem's dtype and device.

    Raises:
        ValueError: on ``block_size < 1``, an unknown variant, or a matrix over ``max_bytes``.
        Cancelled: when the monitor says so, between blocks.

    Example:
        For ``L = 0.5 * theta^T A theta`` the result equals ``A`` (see
        ``tests/known_answer/test_hessian_closed_forms.py``).
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}.")
    if variant != "auto":
        resolve_variant(problem, variant)  # validates the name
    monitor = monitor or Monitor()
    p = problem.num_params
    need = dense_hessian_bytes(p, problem.dtype)
    if need > max_bytes:
        raise ValueError(
            f"The dense Hessian of {p} parameters needs {need / 2**30:.1f} GiB, over the "
            f"{max_bytes / 2**30:.1f} GiB exact mode allows; use mode='iterative'."
        )
    dev, dt = problem.device, problem.dtype
    hess = torch.empty((p, p), dtype=dt, device=dev)
    candidates = list(EXACT_CANDIDATES) if variant == "auto" else [variant]
    engines = {v: make_hvp(problem, v, block_size=block_size) for v in candidates}
    per_column: dict[str, float] = {}
    chosen: str | None = candidates[0] if len(candidates) == 1 else None
    start = 0
    monitor.report("dense_hessian", 0.0, f"0/{p} columns", force=True)
    while start < p:
        monitor.check()
        stop = min(p, start + block_size)
        eye = torch.zeros((p, stop - start), dtype=dt, device=dev)
        eye[torch.arange(start, stop, device=dev), torch.arange(stop - start, device=dev)] = 1
        name = chosen
        if name is None:  # still timing the candidates, one block each
            name = next(v for v in candidates if v not in per_column)
        t0 = time.perf_counter()
        try:
            cols = engines[name](eye)
        except RuntimeError:
            if chosen is not None or len(candidates) == 1:
                raise
            # this variant cannot differentiate the model (e.g. vmap of an op without a
            # batching rule): the other candidate builds the matrix
            candidates.remove(name)
            chosen = candidates[0]
            continue
        if chosen is None or not per_column:
            per_column[name] = (time.perf_counter() - t0) / (stop - start)
            if chosen is None and len(per_column) == len(candidates):
                chosen = min(per_column, key=per_column.__getitem__)
            if chosen is not None:  # keep blocks short: a check at least every ~second
                fit = int(BLOCK_SECONDS / max(per_column[chosen], 1e-9))
                block_size = max(1, min(block_size, fit))
        hess[:, start:stop] = cols
        start = stop
        monitor.report("dense_hessian", start / p, f"{start}/{p} columns"
                       + (f" ({chosen})" if chosen else ""))
    return 0.5 * (hess + hess.T)


def exact_spectrum(hessian: Tensor) -> tuple[Tensor, Tensor]:
    """All eigenvalues (ascending, float64) and eigenvectors of a dense symmetric matrix."""
    if hessian.ndim != 2 or hessian.shape[0] != hessian.shape[1]:
        raise ValueError(f"Shape mismatch: expected (P, P), got {tuple(hessian.shape)}.")
    evals, evecs = torch.linalg.eigh(hessian.to(torch.float64))
    return evals, evecs
