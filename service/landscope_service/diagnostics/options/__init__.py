"""Declarative option tables: the one hand-written source of every kind's options.

Each job kind declares its options once, in ``diagnostics/options/<kind>.py``, as an
:class:`OptionSet` of plain-Python :class:`Scalar`, :class:`Array` and :class:`Group`
entries (type, default, bounds, choices, help) and cross-field :class:`Rule` s. Everything
else is derived from that table by code:

* the core's validation and defaults: :meth:`OptionSet.resolve` (used by each runner);
* the API's marshmallow schema and its OpenAPI component (``jobs/kinds/base.py``);
* the options table of ``docs/kinds/<kind>.md`` and the SDK's typed options classes
  (``landscope_service.codegen``, run by ``make openapi`` and ``make sdk``).

This package imports neither torch nor any service layer, so the API (which has no torch)
reads the same tables as the workers.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "REQUIRED",
    "Array",
    "Group",
    "Option",
    "OptionSet",
    "Rule",
    "Scalar",
    "array",
    "boolean",
    "choice",
    "group",
    "integer",
    "number",
    "string",
]

ScalarType = Literal["integer", "number", "boolean", "string"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Default of an option the caller must give."""


@dataclass(frozen=True)
class Scalar:
    """One JSON scalar option.

    Attributes:
        type: ``integer`` (a JSON integer, never a boolean), ``number`` (a finite JSON
            number), ``boolean`` (``true``/``false`` only) or ``string``.
        default: the value when the option is left out (:data:`REQUIRED`: none).
        help: one sentence or more for the docs, the OpenAPI description and the SDK.
        minimum, maximum: bounds (inclusive unless ``exclusive_*``).
        choices: the allowed strings.
        nullable: ``null`` is allowed (and means what ``help`` says).
        min_length, max_length: string length bounds.
    """

    type: ScalarType
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    min_length: int | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class Array:
    """A JSON list of scalars, or of lists (``item`` an :class:`Array`: e.g. one
    ``[low, high]`` pair per axis). ``default`` is a tuple, or None when nullable."""

    item: Scalar | Array
    default: Any
    help: str
    min_items: int | None = None
    max_items: int | None = None
    nullable: bool = False


@dataclass(frozen=True)
class Group:
    """A nested object of options (its defaults fill in when it is left out)."""

    options: OptionSet
    help: str


Option = Scalar | Array | Group


@dataclass(frozen=True)
class Rule:
    """A cross-field condition, checked by the core, the API and the SDK alike.

    Attributes:
        field: the option the error is reported at.
        expr: a boolean expression over the set's option names, in a small language:
            integers and numbers, ``+ - *``, comparisons, ``and``/``or``/``not`` and
            ``len(name)``; it must hold.
        message: the error, formatted with the option values (``{max_basis}``).
    """

    field: str
    expr: str
    message: str

    def __post_init__(self) -> None:
        _check_expr(ast.parse(self.expr, mode="eval").body, self.expr)

    def holds(self, values: Mapping[str, Any]) -> bool:
        """Evaluate :attr:`expr` over ``values``."""
        return bool(_eval(ast.parse(self.expr, mode="eval").body, values))


@dataclass(frozen=True, eq=False)
class OptionSet:
    """The options of a kind, or of one nested group.

    Attributes:
        name: the schema name, e.g. ``"HessianSpectrumOptions"`` (OpenAPI component,
            SDK class).
        doc: one line describing the set.
        fields: option name -> :class:`Scalar`, :class:`Array` or :class:`Group`, in
            documentation order.
        rules: cross-field conditions.
    """

    name: str
    doc: str
    fields: Mapping[str, Option]
    rules: tuple[Rule, ...] = field(default=())

    def __post_init__(self) -> None:
        for rule in self.rules:
            if rule.field not in self.fields:
                raise ValueError(f"{self.name}: rule field {rule.field!r} is not an option.")
            names = {n.id for n in ast.walk(ast.parse(rule.expr, mode="eval"))
                     if isinstance(n, ast.Name)} - {"len"}
            if not names <= set(self.fields):
                raise ValueError(f"{self.name}: rule {rule.expr!r} names unknown options "
                                 f"{sorted(names - set(self.fields))}.")

    def defaults(self) -> dict[str, Any]:
        """Every option at its default (lists as lists); required options are absent."""
        out: dict[str, Any] = {}
        for name, opt in self.fields.items():
            if isinstance(opt, Group):
                out[name] = opt.options.defaults()
            elif opt.default is not REQUIRED:
                out[name] = _json_default(opt.default)
        return out

    def resolve(self, given: Mapping[str, Any] | None, *, path: str = "") -> dict[str, Any]:
        """``given`` checked against the table and completed with the defaults.

        Args:
            given: the caller's options (``None``: all defaults).
            path: prefix of option names in messages (``"paths.neb."``).

        Returns:
            A new dict with every option (nested groups resolved likewise).

        Raises:
            TypeError: an option has the wrong JSON type, or ``given`` is not a mapping.
            ValueError: an unknown option, a value out of bounds or choices, a
                required option missing, or a broken :class:`Rule`.
        """
        given = {} if given is None else given
        if not isinstance(given, Mapping):
            raise TypeError(f"{path.rstrip('.') or 'options'} must be an object, got "
                            f"{type(given).__name__}.")
        unknown = set(given) - set(self.fields)
        if unknown:
            raise ValueError(f"Unknown options: {sorted(path + str(k) for k in unknown)}; "
                             f"expected a subset of {sorted(self.fields)}.")
        out: dict[str, Any] = {}
        for name, opt in self.fields.items():
            where = path + name
            if isinstance(opt, Group):
                out[name] = opt.options.resolve(given.get(name), path=where + ".")
            elif name not in given:
                if opt.default is REQUIRED:
                    raise ValueError(f"{where} is required.")
                out[name] = _json_default(opt.default)
            elif isinstance(opt, Array):
                out[name] = _check_array(opt, given[name], where)
            else:
                out[name] = _check_scalar(opt, given[name], where)
        for message in self.broken_rules(out):
            raise ValueError(message)
        return out

    def broken_rules(self, values: Mapping[str, Any]) -> list[str]:
        """The messages of the rules that ``values`` (complete) break."""
        return [r.message.format(**values) for r in self.rules if not r.holds(values)]


# --------------------------------------------------------------------------- constructors
def integer(default: Any, help: str, *, ge: int | None = None, le: int | None = None,
            nullable: bool = False) -> Scalar:
    """An integer option with inclusive bounds."""
    return Scalar("integer", default, help, minimum=ge, maximum=le, nullable=nullable)


def number(default: Any, help: str, *, ge: float | None = None, gt: float | None = None,
           le: float | None = None, lt: float | None = None, nullable: bool = False) -> Scalar:
    """A finite number; ``gt``/``lt`` are exclusive bounds, ``ge``/``le`` inclusive."""
    if (ge is not None and gt is not None) or (le is not None and lt is not None):
        raise ValueError("Give at most one lower and one upper bound.")
    return Scalar("number", default, help, minimum=gt if gt is not None else ge,
                  maximum=lt if lt is not None else le, exclusive_minimum=gt is not None,
                  exclusive_maximum=lt is not None, nullable=nullable)


def boolean(default: Any, help: str) -> Scalar:
    """``true`` or ``false``."""
    return Scalar("boolean", default, help)


def choice(default: Any, choices: Sequence[str], help: str) -> Scalar:
    """One of ``choices``."""
    return Scalar("string", default, help, choices=tuple(choices))


def string(default: Any, help: str, *, min_length: int | None = None,
           max_length: int | None = None, nullable: bool = False) -> Scalar:
    """A string (``default`` may be :data:`REQUIRED`)."""
    return Scalar("string", default, help, min_length=min_length, max_length=max_length,
                  nullable=nullable)


def array(item: Scalar | Array, default: Any, help: str, *, min_items: int | None = None,
          max_items: int | None = None, nullable: bool = False) -> Array:
    """A list of ``item`` values."""
    return Array(item, default, help, min_items=min_items, max_items=max_items,
                 nullable=nullable)


def group(options: OptionSet, help: str) -> Group:
    """A nested set of options."""
    return Group(options, help)


# --------------------------------------------------------------------------- checks
_TYPE_WORDS = {"integer": "an integer", "number": "a number", "boolean": "a boolean (true or "
               "false)", "string": "a string"}


def _json_default(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _type_ok(kind: ScalarType, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int)
    if kind == "number":
        return isinstance(value, int | float)
    return isinstance(value, str)


def _check_scalar(opt: Scalar, value: Any, where: str) -> Any:
    if value is None:
        if opt.nullable:
            return None
        raise TypeError(f"{where} must be {_TYPE_WORDS[opt.type]}, got null.")
    if not _type_ok(opt.type, value):
        raise TypeError(f"{where} must be {_TYPE_WORDS[opt.type]}, got "
                        f"{type(value).__name__} {value!r:.60}.")
    if opt.type == "number":
        if not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number, got {value}.")
        value = float(value)
    if opt.minimum is not None and (value <= opt.minimum if opt.exclusive_minimum
                                    else value < opt.minimum):
        op = ">" if opt.exclusive_minimum else ">="
        raise ValueError(f"{where} must be {op} {opt.minimum:g}, got {value}.")
    if opt.maximum is not None and (value >= opt.maximum if opt.exclusive_maximum
                                    else value > opt.maximum):
        op = "<" if opt.exclusive_maximum else "<="
        raise ValueError(f"{where} must be {op} {opt.maximum:g}, got {value}.")
    if opt.choices is not None and value not in opt.choices:
        raise ValueError(f"{where} must be one of {', '.join(map(repr, opt.choices))}, got "
                         f"{value!r}.")
    if opt.min_length is not None and len(value) < opt.min_length:
        raise ValueError(f"{where} must have at least {opt.min_length} characters.")
    if opt.max_length is not None and len(value) > opt.max_length:
        raise ValueError(f"{where} must have at most {opt.max_length} characters.")
    return value


def _check_array(opt: Array, value: Any, where: str) -> list[Any] | None:
    if value is None and opt.nullable:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise TypeError(f"{where} must be a list, got {type(value).__name__}.")
    if opt.min_items is not None and len(value) < opt.min_items:
        raise ValueError(f"{where} must have at least {opt.min_items} items, got {len(value)}.")
    if opt.max_items is not None and len(value) > opt.max_items:
        raise ValueError(f"{where} must have at most {opt.max_items} items, got {len(value)}.")
    if isinstance(opt.item, Array):
        return [_check_array(opt.item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    return [_check_scalar(opt.item, v, f"{where}[{i}]") for i, v in enumerate(value)]


# --------------------------------------------------------------------------- rule language
_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
           ast.Mult: lambda a, b: a * b}
_CMPS = {ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b,
         ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
         ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b}


def _check_expr(node: ast.AST, expr: str) -> None:
    """Allow only the rule language (see :class:`Rule`)."""
    if isinstance(node, ast.BoolOp | ast.Compare | ast.BinOp | ast.UnaryOp):
        if isinstance(node, ast.BinOp) and type(node.op) not in _BINOPS:
            raise ValueError(f"Rule {expr!r}: operator {type(node.op).__name__} not allowed.")
        if isinstance(node, ast.Compare) and any(type(o) not in _CMPS for o in node.ops):
            raise ValueError(f"Rule {expr!r}: comparison not allowed.")
        if isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not | ast.USub):
            raise ValueError(f"Rule {expr!r}: unary operator not allowed.")
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.boolop | ast.cmpop | ast.operator | ast.unaryop):
                _check_expr(child, expr)
        return
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id == "len"
                and len(node.args) == 1 and not node.keywords
                and isinstance(node.args[0], ast.Name)):
            raise ValueError(f"Rule {expr!r}: only len(name) may be called.")
        return
    if isinstance(node, ast.Name) or (isinstance(node, ast.Constant)
                                      and isinstance(node.value, int | float)
                                      and not isinstance(node.value, bool)):
        return
    raise ValueError(f"Rule {expr!r}: {type(node).__name__} is not allowed.")


def _eval(node: ast.AST, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.BoolOp):
        parts = [_eval(v, values) for v in node.values]
        return all(parts) if isinstance(node.op, ast.And) else any(parts)
    if isinstance(node, ast.UnaryOp):
        inner = _eval(node.operand, values)
        return (not inner) if isinstance(node.op, ast.Not) else -inner
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, values)
            if not _CMPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        arg = values[node.args[0].id]  # type: ignore[attr-defined]
        return len(arg or ())
    if isinstance(node, ast.Name):
        return values[node.id]
    return node.value  # type: ignore[attr-defined]
