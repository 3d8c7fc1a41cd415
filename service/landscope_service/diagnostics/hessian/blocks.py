"""Per-layer (parameter-group) diagonal blocks of the Hessian.

A layer's block ``H[I, I]`` (``I`` its parameters' indices in ``flatten`` order) is the
curvature seen when only that layer moves. Its top eigenvalue comes from Lanczos on the
:class:`~.operators.BlockOperator`; its trace from the full-space probes, since for a
Rademacher ``g``, ``E[g_I^T (H g)_I] = tr(H[I, I])`` (the off-diagonal blocks average out),
so the probes that estimate ``tr(H)`` give every block's trace without another product.

Blocks are named by module path: the parameter ``layer2.0.conv1.weight`` belongs to the
block ``layer2.0.conv1``. For a ``graph`` model built from ``from_module`` these are the
user's own module paths (an ``nn.MultiheadAttention`` at ``attn`` gives the blocks
``attn``, its input projections, and ``attn.out_proj``); a ``parameter`` node without a
dot in its name is a block of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..problem import Params

__all__ = ["ParamGroup", "parameter_groups"]


@dataclass(frozen=True)
class ParamGroup:
    """A layer: its name (module path), parameter names and ``[start, stop)`` indices."""

    name: str
    params: tuple[str, ...]
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def parameter_groups(params: Params) -> list[ParamGroup]:
    """Group parameters by module (``"0.weight"``, ``"0.bias"`` -> ``"0"``), in order.

    Raises:
        ValueError: if a module's parameters are not contiguous in ``params``.
    """
    groups: list[ParamGroup] = []
    offset = 0
    seen: set[str] = set()
    for name, p in params.items():
        layer = name.rsplit(".", 1)[0] if "." in name else name
        n = int(p.numel())
        if groups and groups[-1].name == layer:
            g = groups[-1]
            groups[-1] = ParamGroup(layer, (*g.params, name), g.start, offset + n)
        else:
            if layer in seen:
                raise ValueError(f"Parameters of {layer!r} are not contiguous in the "
                                 f"parameter dict; got {list(params)}.")
            seen.add(layer)
            groups.append(ParamGroup(layer, (name,), offset, offset + n))
        offset += n
    return groups
