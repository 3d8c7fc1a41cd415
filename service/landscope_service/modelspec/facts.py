"""Submit-time facts and cross-field checks of a job request (no torch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from marshmallow import ValidationError

from ..jobs.kinds.base import SubmitContext
from .data import ReadBlob, inspect_data, load_arrays
from .shapes import ArchitectureInfo, SpecError, analyze
from .stream import STREAMED_KINDS, inspect_streamed, is_streamed
from .weights import check_weights

__all__ = ["submit_context"]

_LOSSES = ("mse", "cross_entropy")


def _merge(into: dict[Any, Any], new: dict[Any, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key].extend(value)
        else:
            into[key] = value


def _weights_checker(read_blob: ReadBlob, info: ArchitectureInfo) -> Callable[[str], None]:
    def check(blob_id: str) -> None:
        """Check that the weights blob ``blob_id`` fits the architecture.

        Raises:
            ValueError: unknown blob id, unreadable file, or names/shapes/values that do
                not fit.
        """
        try:
            raw = read_blob(blob_id)
        except KeyError:
            raise ValueError(
                f"Unknown blob id {blob_id}; upload it with POST /v1/blobs first."
            ) from None
        check_weights(raw, info.param_shapes, buffer_shapes=info.buffer_shapes)

    return check


def _token_problems(
    data: dict[str, Any], read_blob: ReadBlob, info: ArchitectureInfo, loss: str
) -> dict[str, Any]:
    """Token ids must be integers in ``[0, num_embeddings)`` of the embedding they feed."""
    where = next((k for k in ("inline", "blob", "synthetic") if k in data), "inline")
    if where == "synthetic":
        return {"data": {"synthetic": [
            "This graph takes int64 token ids, which the synthetic generators do not make; "
            "send the tokens inline or as an npz/safetensors blob."
        ]}}
    x, _ = load_arrays(
        data, read_blob, loss=loss, input_dim=info.input_shape, output_dim=info.output_dim
    )
    path = ["data", "inline", "x"] if where == "inline" else ["data", "blob"]
    vocab = info.graph.max_token if info.graph is not None else None
    msg: str | None = None
    frac = np.argwhere(x != np.round(x))
    if frac.size:
        msg = f"Token ids must be integers; x{list(map(int, frac[0]))} is {x[tuple(frac[0])]!r}."
    elif vocab is not None:
        bad = np.argwhere((x < 0) | (x >= vocab))
        if bad.size:
            msg = (
                f"Token id {int(x[tuple(bad[0])])} at x{list(map(int, bad[0]))} is outside "
                f"[0, {vocab}) (num_embeddings of the embedding the input feeds)."
            )
    if msg is None:
        return {}
    out: Any = [msg]
    for key in reversed(path):
        out = {key: out}
    return dict(out)


def submit_context(request: dict[str, Any], read_blob: ReadBlob) -> SubmitContext:
    """Check a validated request across fields and collect its facts, without torch.

    Checks: the architecture fits together and within limits; ``cross_entropy`` needs
    ``output_dim >= 2``; the weights blob exists and matches the architecture (names,
    shapes, floating dtype, finite values); the data exist and match the architecture
    and loss (shapes, labels, finite values). Nothing is cached between calls.

    Args:
        request: the job request as loaded by the API schema (``model``, ``data``,
            ``loss``).
        read_blob: reads a blob by id (bytes); raises ``KeyError`` for an unknown id.

    Returns:
        The :class:`SubmitContext`; its ``check_weights(blob_id)`` validates any other
        weights blob (e.g. a list of minima) against the architecture.

    Raises:
        ValidationError: every problem found, nested like the request, e.g.
            ``{"model": {"weights": ["..."]}, "data": {"inline": {"y": ["..."]}},
            "loss": ["..."]}``.
    """
    model = request["model"]
    arch = model["architecture"]
    try:
        info = analyze(arch)
    except SpecError as e:
        raise ValidationError({"model": {"architecture": e.as_messages()}}) from e
    errors: dict[str, Any] = {}
    loss = request.get("loss", "mse")
    if loss not in _LOSSES:
        errors["loss"] = [f"Unknown loss {loss!r}: use mse or cross_entropy."]
    elif loss == "cross_entropy" and info.output_dim < 2:
        errors["loss"] = [
            f"cross_entropy needs output_dim >= 2 (one output per class); the architecture "
            f"has output_dim {info.output_dim}. Use mse, or give one output per class."
        ]
    check = _weights_checker(read_blob, info)
    if model.get("weights"):
        try:
            check(model["weights"])
        except ValueError as e:
            _merge(errors, {"model": {"weights": [str(e)]}})
    num_samples: int | None = None
    if "loss" not in errors:
        try:
            if is_streamed(request["data"]):
                kind = request.get("kind")
                if kind not in STREAMED_KINDS:
                    raise ValidationError({"data": {"_schema": [
                        f"Streamed data (transform or blobs) runs with the kinds "
                        f"{', '.join(STREAMED_KINDS)}; {kind} reads its data set whole: send "
                        f"it as blob data without transform."]}})
                # A reader that can give the blob's local file (storage.blobs.TenantBlobs)
                # lets the headers be read without reading the whole file.
                num_samples = inspect_streamed(
                    request["data"], getattr(read_blob, "file", read_blob), loss=loss,
                    input_shape=tuple(info.input_shape), output_dim=info.output_dim)
            else:
                num_samples = inspect_data(
                    request["data"],
                    read_blob,
                    loss=loss,
                    input_dim=info.input_shape,
                    output_dim=info.output_dim,
                )
        except ValidationError as e:
            if isinstance(e.messages, dict):
                _merge(errors, e.messages)
            else:
                _merge(errors, {"data": {"_schema": list(e.messages)}})
        if "data" not in errors and info.input_dtype == "int64":
            _merge(errors, _token_problems(request["data"], read_blob, info, loss))
    if errors:
        raise ValidationError(errors)
    return SubmitContext(
        num_params=info.num_params,
        num_samples=num_samples,
        input_dim=info.input_dim,
        output_dim=info.output_dim,
        loss=loss,
        architecture=arch,
        param_shapes=dict(info.param_shapes),
        check_weights=check,
        info=info,
    )
