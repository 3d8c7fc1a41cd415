"""The kinds' options as OpenAPI components, derived from the core's option tables."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from ..diagnostics.options import Group, OptionSet
from ..jobs.kinds.base import options_schema, schema_extras
from ..jobs.registry import public_kinds

__all__ = ["register_option_components"]


def register_option_components(spec: APISpec) -> None:
    """Each public kind's options as component ``<Kind>Options`` (``x-kind`` names the
    kind), nested groups as their own components; tables' rules as ``x-rules``."""
    for kind in public_kinds().values():
        _register(spec, kind.options, {"x-kind": kind.name})


def _register(spec: APISpec, option_set: OptionSet, extra: dict[str, Any]) -> None:
    for opt in option_set.fields.values():
        if isinstance(opt, Group):
            _register(spec, opt.options, {})
    if option_set.name not in spec.components.schemas:
        spec.components.schema(option_set.name, {"description": option_set.doc,
                                                 **schema_extras(option_set), **extra},
                               schema=options_schema(option_set))
