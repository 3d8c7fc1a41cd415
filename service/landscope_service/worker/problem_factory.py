"""Request -> Problem on the worker's device (modelspec does the building)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..diagnostics import Params, Problem
    from .runtime import JobRuntime


_capped: list[bool] = []


def resolve_device(requested: str, memory_fraction: float = 0.0) -> Any:
    """cpu, or the worker's GPU (``CUDA_VISIBLE_DEVICES`` pins one per process).

    With ``memory_fraction`` > 0 the process may allocate at most that fraction of the
    GPU's memory (``LANDSCOPE_GPU_MEMORY_FRACTION``); beyond it, allocations raise
    CUDA out-of-memory, which fails the job and leaves the worker running.
    """
    import torch

    from .runtime import UserFacingError

    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        if memory_fraction > 0 and not _capped:
            torch.cuda.set_per_process_memory_fraction(min(memory_fraction, 1.0))
            _capped.append(True)
        return torch.device("cuda")
    if requested == "cuda":
        raise UserFacingError(
            "no_gpu", "The job asked for device 'cuda' but this worker has no usable GPU."
        )
    return torch.device("cpu")


def build_for_request(
    rt: JobRuntime, tenant: str, req: dict[str, Any]
) -> tuple[Problem, Callable[[str], Params]]:
    import torch

    from ..modelspec.build import build_problem
    from ..modelspec.shapes import param_shapes
    from ..modelspec.weights import load_params
    from .runtime import UserFacingError

    device = resolve_device(req.get("device", "auto"), rt.settings.gpu_memory_fraction)
    dtype = {"float32": torch.float32, "float64": torch.float64}[req.get("dtype", "float32")]

    def read_blob(blob_id: str) -> bytes:
        try:
            return rt.blobs.read(tenant, blob_id)
        except KeyError:
            raise UserFacingError(
                "blob_missing", f"Blob {blob_id} is no longer stored; upload it again."
            ) from None

    def blob_file(blob_id: str) -> Any:
        try:
            return rt.blobs.file(tenant, blob_id)
        except KeyError:
            raise UserFacingError(
                "blob_missing", f"Blob {blob_id} is no longer stored; upload it again."
            ) from None

    try:
        problem = build_problem(req, read_blob, device=device, dtype=dtype,
                                blob_file=blob_file)
    except UserFacingError:
        raise
    except (ValueError, KeyError) as e:
        raise UserFacingError("invalid_input", str(e)) from e
    shapes = param_shapes(req["model"]["architecture"])

    def load(ref: str) -> Params:
        try:
            return load_params(read_blob(ref), shapes, device=device, dtype=dtype)
        except ValueError as e:
            raise UserFacingError("invalid_input", f"weights {ref}: {e}") from e

    return problem, load
