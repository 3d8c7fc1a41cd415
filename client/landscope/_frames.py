"""Data frames and notebook views of results.

``to_pandas()`` needs the optional ``pandas`` extra (``pip install 'landscope[pandas]'``);
pandas is imported inside the call, so ``import landscope`` never needs it.
``_repr_html_`` (Jupyter's rich display) needs nothing: it renders a result's scalar
fields (the summary) as an HTML table, every value escaped.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping, Sequence
from typing import Any

from landscope._exceptions import LandscopeError

__all__ = ["frame", "summary_html", "summary_rows"]

_MAX_ROWS = 60


def frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Any:
    """A ``pandas.DataFrame`` of ``rows`` with ``columns`` (in that order)."""
    try:
        import pandas as pd
    except ImportError as e:
        raise LandscopeError(
            "to_pandas() needs pandas: pip install 'landscope[pandas]'.") from e
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=list(columns))


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, tuple | list):
        shown = ", ".join(_fmt(v) for v in value[:8])
        return f"[{shown}{', ...' if len(value) > 8 else ''}] ({len(value)})" \
            if len(value) > 8 else f"[{shown}]"
    return str(value)


def summary_rows(obj: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """``(name, value)`` of a result's scalar fields and short scalar lists, one level of
    nested results deep."""
    out: list[tuple[str, str]] = []
    if not dataclasses.is_dataclass(obj):
        return out
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = prefix + f.name
        if _scalar(value):
            out.append((name, _fmt(value)))
        elif isinstance(value, tuple) and value and all(_scalar(v) for v in value) \
                and not all(isinstance(v, str) and len(v) > 60 for v in value):
            out.append((name, _fmt(value)))
        elif dataclasses.is_dataclass(value) and depth == 0:
            out.extend(summary_rows(value, name + ".", depth + 1))
    return out


def summary_html(obj: Any) -> str:
    """An HTML table of :func:`summary_rows` (escaped), headed by the class name."""
    rows = summary_rows(obj)
    more = len(rows) - _MAX_ROWS
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                   f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
                   for k, v in rows[:_MAX_ROWS])
    if more > 0:
        body += f"<tr><td colspan='2'>... {more} more fields</td></tr>"
    warnings = getattr(obj, "warnings", None)
    notes = ""
    if isinstance(warnings, tuple) and warnings:
        notes = "<ul>" + "".join(f"<li>{html.escape(str(w))}</li>" for w in warnings) + "</ul>"
    return (f"<div><strong>{html.escape(type(obj).__name__)}</strong>"
            f"<table>{body}</table>{notes}</div>")
