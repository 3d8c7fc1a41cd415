"""Weights whose names do not match the architecture's: what to tell the user (no torch).

Three cases get their own message when a weights file's names differ from the
architecture's:

* every name carries DataParallel's ``module.`` prefix and matches once it is dropped;
* the file looks like a training checkpoint (``state_dict.``/``model.`` prefixes next
  to optimizer entries), not a state_dict;
* the names differ but the tensors pair up one to one with the architecture's: grouped
  by leaf name (``weight``, ``bias``, ``running_mean``, ...) and shape, every group has as
  many tensors in the file as the architecture has, and within a group they pair in
  order (the file's order for ``.pt``; natural name order for safetensors, which stores
  names sorted). The message proposes the mapping (``'conv1.weight' -> '0.weight', ...``),
  and the SDK's ``client.blobs.upload_state_dict(module, spec)`` applies the same rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

__all__ = ["mapping_hint", "natural_key", "propose_mapping", "safetensors_order"]

Shapes = Mapping[str, tuple[int, ...]]

_SHOWN = 6
_CHECKPOINT_KEYS = ("optimizer", "epoch", "scheduler", "lr_scheduler", "global_step")


def safetensors_order(raw: bytes) -> list[str] | None:
    """The module order the SDK records in a safetensors header, if any."""
    try:
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(bytes(raw[8 : 8 + n]))
        order = json.loads(header["__metadata__"]["landscope.order"])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(order, list) or not all(isinstance(k, str) for k in order):
        return None
    return order


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders ``layer2`` before ``layer10``."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _leaf(name: str) -> str:
    return name.rpartition(".")[2]


def propose_mapping(
    present: Shapes,
    expected: Shapes,
    optional: Shapes | None = None,
    *,
    ordered: bool = True,
) -> dict[str, str] | None:
    """A one-to-one renaming of ``present`` onto the architecture's names, if shapes allow.

    Args:
        present: the file's names and shapes.
        expected: the architecture's parameters (all must be covered).
        optional: its buffers (covered if the file has tensors for them).
        ordered: whether ``present`` is in the module's order; if not, only groups of
            one tensor can pair.

    Returns:
        ``{file name: architecture name}`` covering every file tensor, or ``None`` when
        the tensors do not pair up one to one (a group of the same leaf and shape has
        different sizes on the two sides, or several members and no order).
    """
    optional = optional or {}
    names = list(present)
    groups: dict[tuple[str, tuple[int, ...]], list[str]] = {}
    for name in names:
        groups.setdefault((_leaf(name), tuple(present[name])), []).append(name)
    wanted: dict[tuple[str, tuple[int, ...]], list[str]] = {}
    for name, shape in [*expected.items(), *optional.items()]:
        wanted.setdefault((_leaf(name), tuple(shape)), []).append(name)
    mapping: dict[str, str] = {}
    for key, have in groups.items():
        want = wanted.get(key, [])
        required = [w for w in want if w in expected]
        if len(have) > 1 and not ordered:
            return None
        if len(have) == len(want) or (len(have) == len(required) and len(have) < len(want)):
            targets = want if len(have) == len(want) else required
            mapping.update(zip(have, targets, strict=True))
        else:
            return None
    if any(name not in mapping.values() for name in expected):
        return None
    return mapping


def _checkpoint_hint(present: Shapes) -> str | None:
    heads = {name.split(".", 1)[0] for name in present}
    if heads & set(_CHECKPOINT_KEYS) or (len(heads) > 1 and heads & {"state_dict", "model"}):
        prefix = next((h for h in ("state_dict", "model") if h in heads), None)
        where = f"checkpoint[{prefix!r}]" if prefix else "the model's state_dict"
        return (
            "this looks like a training checkpoint (entries "
            f"{sorted(heads)[:_SHOWN]}), not a state_dict: save {where} alone, e.g. "
            f"torch.save({where}, f)"
        )
    return None


def mapping_hint(
    present: Shapes,
    expected: Shapes,
    optional: Shapes | None = None,
    *,
    ordered: bool = True,
) -> str | None:
    """One sentence for a weights file whose names do not match, or ``None``.

    Args:
        present: the file's names and shapes.
        expected: the architecture's parameter names and shapes.
        optional: its buffer names and shapes.
        ordered: as :func:`propose_mapping`.
    """
    optional = optional or {}
    known = set(expected) | set(optional)
    if present and all(n.startswith("module.") for n in present):
        stripped = {n.removeprefix("module."): s for n, s in present.items()}
        if set(stripped) <= known and set(expected) <= set(stripped):
            return (
                "every name carries DataParallel's 'module.' prefix ('"
                f"{next(iter(present))}'): save model.module.state_dict() instead, or "
                "upload with client.blobs.upload_state_dict(model, spec), which drops it"
            )
    hint = _checkpoint_hint(present)
    if hint is not None:
        return hint
    mapping = propose_mapping(present, expected, optional, ordered=ordered)
    if mapping is None and not ordered and propose_mapping(present, expected, optional):
        return (
            "the names differ from the architecture's, and the tensors would pair up by "
            "shape, but this safetensors file does not record the module's order (names "
            "are stored sorted): upload with client.blobs.upload_state_dict(module, spec), "
            "which renames in the module's order, or rename the keys yourself"
        )
    if mapping is None or all(src == dst for src, dst in mapping.items()):
        return None
    renamed = [(s, d) for s, d in mapping.items() if s != d]
    shown = ", ".join(f"{s!r} -> {d!r}" for s, d in renamed[:_SHOWN])
    more = f" and {len(renamed) - _SHOWN} more" if len(renamed) > _SHOWN else ""
    return (
        "the names differ from the architecture's, but the tensors pair up one to one by "
        f"shape in order: {shown}{more}. Upload with "
        "client.blobs.upload_state_dict(module, spec) to apply this renaming, or rename "
        "the keys yourself"
    )
