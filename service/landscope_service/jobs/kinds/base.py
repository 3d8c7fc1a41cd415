"""How a job kind is declared.

A kind's options are declared once, in the core's plain-Python table
``diagnostics/options/<kind>.py`` (``OPTIONS``, ``RUNNER``). A kind module
(``jobs/kinds/<name>.py``) defines one :class:`KindSpec` named ``KIND`` from that table
(:meth:`KindSpec.from_table`) plus, optionally, a submit-time ``check``. The API's
marshmallow schema (:func:`options_schema`) and the OpenAPI component are derived from the
table here; the API never imports torch, the worker imports ``runner`` lazily.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ...diagnostics.options import REQUIRED, Array, Group, Option, OptionSet, Scalar
from ...strict import StrictBoolean, StrictFloat, StrictSchema

if TYPE_CHECKING:
    from ...modelspec.shapes import ArchitectureInfo

__all__ = ["KindSpec", "OptionsSchema", "SubmitContext", "options_schema", "schema_extras"]


class OptionsSchema(StrictSchema):
    """Base of every options schema: strict, unknown fields are rejected."""


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
        get_job: the job record (as the API shows it) of the submitting API key's job
            with this id, or None (unknown, or another tenant's).
        info: the architecture's analysis when the context was made from a request, so
            the submit path analyses it once.
    """

    num_params: int
    num_samples: int | None
    input_dim: int
    output_dim: int
    loss: str
    architecture: dict[str, Any]
    param_shapes: dict[str, tuple[int, ...]]
    check_weights: Callable[[str], None] = field(default=lambda ref: None)
    get_job: Callable[[str], dict[str, Any] | None] = field(default=lambda job_id: None)
    info: ArchitectureInfo | None = None


@dataclass(frozen=True)
class KindSpec:
    """A job kind.

    Attributes:
        name: the ``kind`` string of the API.
        options: the kind's option table (from the core).
        runner: dotted path ``"module:function"`` of
            ``runner(problem, options, ctx: RunContext) -> RunOutput`` in the core.
        check: optional submit-time check of options against the request facts. Raises
            ``marshmallow.ValidationError({"field": ["message"]})`` with field names
            relative to ``options``; a key starting with ``^`` names a top-level field of
            the request instead (``{"^loss": [...]}`` is reported at ``loss``).
        summary: one line for the docs.
    """

    name: str
    options: OptionSet
    runner: str
    check: Callable[[dict[str, Any], SubmitContext], None] | None = None
    summary: str = ""

    @property
    def options_schema(self) -> type[Schema]:
        """The marshmallow schema of ``options``, derived from :attr:`options`."""
        return options_schema(self.options)

    @classmethod
    def from_table(cls, name: str, *, summary: str,
                   check: Callable[[dict[str, Any], SubmitContext], None] | None = None
                   ) -> KindSpec:
        """The kind ``name`` from its table ``diagnostics/options/<name>.py``."""
        table = table_module(name)
        return cls(name=name, options=table.OPTIONS, runner=table.RUNNER, check=check,
                   summary=summary)


def table_module(name: str) -> ModuleType:
    """The core's option table module of kind ``name`` (plain Python, no torch)."""
    return importlib.import_module(f"landscope_service.diagnostics.options.{name}")


# --------------------------------------------------------------------------- derivation
def _range(opt: Scalar) -> list[validate.Validator]:
    if opt.minimum is None and opt.maximum is None:
        return []
    return [validate.Range(min=opt.minimum, max=opt.maximum,
                           min_inclusive=not opt.exclusive_minimum,
                           max_inclusive=not opt.exclusive_maximum)]


def _scalar_field(opt: Scalar, **kwargs: Any) -> fields.Field:
    metadata: dict[str, Any] = {"description": opt.help}
    if opt.exclusive_minimum:
        metadata["exclusiveMinimum"] = opt.minimum
    if opt.exclusive_maximum:
        metadata["exclusiveMaximum"] = opt.maximum
    validators = _range(opt)
    if opt.choices is not None:
        validators.append(validate.OneOf(opt.choices))
    if opt.min_length is not None or opt.max_length is not None:
        validators.append(validate.Length(min=opt.min_length, max=opt.max_length))
    common: dict[str, Any] = {"validate": validators, "metadata": metadata,
                              "allow_none": opt.nullable, **kwargs}
    if opt.type == "integer":
        return fields.Integer(strict=True, **common)
    if opt.type == "number":
        return StrictFloat(**common)
    if opt.type == "boolean":
        return StrictBoolean(**common)
    return fields.String(**common)


def _default_kwargs(default: Any) -> dict[str, Any]:
    if default is REQUIRED:
        return {"required": True}
    if isinstance(default, tuple):
        return {"load_default": functools.partial(list, default)}
    return {"load_default": default}


def _item_field(opt: Scalar | Array) -> fields.Field:
    """An array's item: a scalar field, or a list field (nested arrays) without default."""
    if isinstance(opt, Scalar):
        return _scalar_field(opt)
    length = ([validate.Length(min=opt.min_items, max=opt.max_items)]
              if opt.min_items is not None or opt.max_items is not None else [])
    return fields.List(_item_field(opt.item), validate=length, allow_none=opt.nullable,
                       metadata={"description": opt.help})


def _field(opt: Option) -> fields.Field:
    if isinstance(opt, Group):
        sub = options_schema(opt.options)
        loader: list[Schema] = []  # one instance, made on first use (a load shares nothing)

        def group_default() -> Any:
            if not loader:
                loader.append(sub())
            return loader[0].load({})

        return fields.Nested(sub, load_default=group_default,
                             metadata={"description": opt.help})
    if isinstance(opt, Array):
        item = _item_field(opt.item)
        length = ([validate.Length(min=opt.min_items, max=opt.max_items)]
                  if opt.min_items is not None or opt.max_items is not None else [])
        metadata: dict[str, Any] = {"description": opt.help}
        if isinstance(opt.default, tuple):
            metadata["default"] = list(opt.default)  # documented although loaded by a callable
        return fields.List(item, validate=length, allow_none=opt.nullable, metadata=metadata,
                           **_default_kwargs(opt.default))
    return _scalar_field(opt, **_default_kwargs(opt.default))


@functools.cache
def options_schema(option_set: OptionSet) -> type[Schema]:
    """The marshmallow schema class ``<name>Schema`` of an option table.

    Types are strict, bounds and choices as in the table; the table's rules run as a
    schema validator once the fields are valid.
    """
    attrs: dict[str, Any] = {name: _field(opt) for name, opt in option_set.fields.items()}

    def _rules(self: Schema, data: dict[str, Any], **kwargs: Any) -> None:
        if not option_set.rules:
            return
        values = {**option_set.defaults(), **data}
        errors: dict[str, list[str]] = {}
        for rule in option_set.rules:
            if not rule.holds(values):
                errors.setdefault(rule.field, []).append(rule.message.format(**values))
        if errors:
            raise ValidationError(errors)

    attrs["_rules"] = validates_schema(skip_on_field_errors=True)(_rules)
    attrs["__doc__"] = option_set.doc
    attrs["__module__"] = __name__
    attrs["__test__"] = False  # "TestBlockOptionsSchema" is not a pytest class
    return type(f"{option_set.name}Schema", (OptionsSchema,), attrs)


def schema_extras(option_set: OptionSet) -> dict[str, Any]:
    """OpenAPI extension keys of a table's component: its rules (``x-rules``)."""
    if not option_set.rules:
        return {}
    return {"x-rules": [{"field": r.field, "expr": r.expr, "message": r.message}
                        for r in option_set.rules]}
