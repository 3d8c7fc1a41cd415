"""PyTorch helpers (``pip install landscope[torch]``): state dicts to safetensors.

torch is imported only when one of these functions is called.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["state_dict_to_safetensors"]

_DTYPE_NAMES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}


def import_torch() -> Any:
    """Import torch, or explain how to install it.

    Raises:
        ImportError: torch is not installed.
    """
    try:
        return importlib.import_module("torch")
    except ImportError as e:
        raise ImportError(
            "This needs PyTorch: install it with `pip install landscope[torch]`."
        ) from e


def state_dict_to_safetensors(
    state_dict: Mapping[str, Any] | Any, metadata: Mapping[str, str] | None = None
) -> bytes:
    """Serialise a state dict (or a module) in the safetensors format.

    The layout is deterministic (tensors sorted by name), so the same weights give the
    same bytes and therefore the same content-addressed blob id. The state dict's own
    order (the module's) is recorded in the header metadata as ``landscope.order``, so
    the service can propose a renaming in that order when names do not match.

    Args:
        state_dict: parameter name -> tensor, or a ``torch.nn.Module`` (its
            ``state_dict()`` is used).
        metadata: optional string pairs stored in the file header.

    Returns:
        The file content.

    Raises:
        ImportError: torch is not installed.
        TypeError: a value is not a tensor.
        ValueError: a tensor's dtype has no safetensors equivalent.
    """
    torch = import_torch()
    if isinstance(state_dict, torch.nn.Module):
        state_dict = state_dict.state_dict()
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"Expected a state dict or a torch.nn.Module, got {type(state_dict).__name__}."
        )
    header: dict[str, Any] = {}
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta["landscope.order"] = json.dumps(list(state_dict), separators=(",", ":"))
    header["__metadata__"] = meta
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(state_dict):
        tensor = state_dict[name]
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict[{name!r}] is a {type(tensor).__name__}, not a tensor.")
        dtype_name = str(tensor.dtype).removeprefix("torch.")
        if dtype_name not in _DTYPE_NAMES:
            raise ValueError(
                f"state_dict[{name!r}] has dtype {tensor.dtype}; expected one of "
                f"{', '.join(sorted(_DTYPE_NAMES))}."
            )
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        raw = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        header[name] = {
            "dtype": _DTYPE_NAMES[dtype_name],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    return len(encoded).to_bytes(8, "little") + encoded + b"".join(chunks)
