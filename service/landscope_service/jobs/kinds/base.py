"""How a job kind is declared.

A kind module (``jobs/kinds/<name>.py``) defines one :class:`KindSpec` named ``KIND``.
The API uses ``options_schema`` and ``check`` at submit time (it never imports torch);
the worker imports ``runner`` lazily and calls it with the validated options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from marshmallow import RAISE, Schema

__all__ = ["KindSpec", "OptionsSchema", "SubmitContext"]


class OptionsSchema(Schema):
    """Base of every options schema: unknown fields are rejected."""

    class Meta:
        unknown = RAISE


@dataclass(frozen=True)
class SubmitContext:
    """Facts about a request known at submit time without torch.

    Attributes:
        num_params: P, the parameter count of the architecture.
        num_samples: N, the number of data points (None if not known before the run).
        input_dim: n0; output_dim: r (classes for cross_entropy).
        loss: "mse" or "cross_entropy".
        architecture: the validated architecture spec (JSON).
        param_shapes: parameter name -> shape.
        check_weights: validates that a weights blob id matches the architecture;
            raises ``ValueError`` with a message naming what is wrong.
    """

    num_params: int
    num_samples: int | None
    input_dim: int
    output_dim: int
    loss: str
    architecture: dict[str, Any]
    param_shapes: dict[str, tuple[int, ...]]
    check_weights: Callable[[str], None] = field(default=lambda ref: None)


@dataclass(frozen=True)
class KindSpec:
    """A job kind.

    Attributes:
        name: the ``kind`` string of the API.
        options_schema: marshmallow schema of ``options``; fields carry ``load_default``
            so that the loaded dict is complete; integers are ``Integer(strict=True)``.
        runner: dotted path ``"module:function"`` of
            ``runner(problem, options, ctx: RunContext) -> RunOutput`` in the core.
        check: optional submit-time check of options against the request facts. Raises
            ``marshmallow.ValidationError({"field": ["message"]})`` with field names
            relative to ``options``; a key starting with ``^`` names a top-level field of
            the request instead (``{"^loss": [...]}`` is reported at ``loss``).
        summary: one line for the docs.
    """

    name: str
    options_schema: type[Schema]
    runner: str
    check: Callable[[dict[str, Any], SubmitContext], None] | None = None
    summary: str = ""
