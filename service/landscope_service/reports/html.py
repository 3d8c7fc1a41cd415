"""``report.html``: a finished job as one self-contained page, opened offline.

It holds the request summary, the result's numbers, the ``theory`` block as a table of
theorem, hypotheses, predicted, measured and verdict, the warnings, the figures as inline
SVG (PNG data URIs when a figure has no SVG), the list of artifacts, and the full result
JSON. The page has no script and no external reference: styles are inline, figures are
inline, links point only inside the page. The worker writes it after the run from what
the core returned; this module formats, it computes nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from html.parser import HTMLParser
from typing import Any

import jinja2
from markupsafe import Markup

from ..diagnostics.output import Artifact

__all__ = [
    "REPORT_NAME",
    "TheoryRow",
    "external_references",
    "job_report",
    "report_artifact",
    "report_html",
    "theory_rows",
]

REPORT_NAME = "report.html"
MAX_NUMBER_ROWS = 400
MAX_LIST_SHOWN = 8
MAX_FIGURE_BYTES = 8 << 20  # a larger SVG is linked by name, not inlined

_SVG_START = re.compile(rb"<svg[\s>]")
_UNSAFE_SVG = re.compile(rb"<script|<foreignObject|\son[a-z]+\s*=|javascript:|"
                         rb"(?:href|src)\s*=\s*[\"'](?!#)|url\(\s*['\"]?(?!#)", re.I)


@dataclass(frozen=True)
class TheoryRow:
    """One line of the theory table."""

    theorem: str
    applies: str
    hypotheses: list[str]
    predicted: list[str]
    measured: list[str]
    verdict: str


def _fmt(v: Any) -> str:
    """A value for a table cell: floats to 6 significant digits, short lists inline."""
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "—"}[v]
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, (list, tuple)):
        if len(v) > MAX_LIST_SHOWN or any(isinstance(x, (dict, list)) for x in v):
            return f"[{len(v)} values]"
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return ", ".join(f"{k} = {_fmt(x)}" for k, x in v.items())
    return str(v)


def _pairs(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, Mapping):
        return [f"{prefix}{k} = {_fmt(v)}" for k, v in value.items()]
    if value is None and not prefix:
        return []
    return [f"{prefix}{_fmt(value)}"]


def _verdict(entry: Mapping[str, Any]) -> str:
    v = entry.get("verdict")
    if isinstance(v, str) and v:
        return v
    if entry.get("applies") is False:
        return "does not apply"
    for key in ("agrees", "consistent"):
        if key in entry:
            return {True: "agrees", False: "disagrees"}.get(entry[key], "undecided")
    return "—"


def _hypotheses(h: Any) -> list[str]:
    out: list[str] = []
    if isinstance(h, Mapping):
        out += [f"{k}: {_fmt(v)}" for k, v in h.items()]
    elif isinstance(h, Sequence) and not isinstance(h, str):
        for item in h:
            if isinstance(item, Mapping) and "name" in item:
                mark = {True: "holds", False: "fails"}.get(item.get("holds"), "unknown")
                detail = f" ({item['detail']})" if item.get("detail") else ""
                out.append(f"{item['name']}: {mark}{detail}")
            else:
                out.append(_fmt(item))
    elif h is not None:
        out.append(_fmt(h))
    return out


def _entry_row(name: str, entry: Mapping[str, Any]) -> TheoryRow:
    theorem = str(entry.get("theorem") or entry.get("statement") or name)
    if entry.get("theorem") and entry.get("statement"):
        theorem = f"{entry['theorem']}: {entry['statement']}"
    applies = entry.get("applies")
    predicted: list[str] = []
    measured: list[str] = []
    for k, v in entry.items():
        if k.startswith(("predicted", "predicts")):
            label = "" if k == "predicted" else f"{k.removeprefix('predicted_')}: "
            predicted += _pairs(v, label) if not isinstance(v, Mapping) else _pairs(v)
        elif k.startswith("measured"):
            label = "" if k == "measured" else f"{k.removeprefix('measured_')}: "
            measured += _pairs(v) if isinstance(v, Mapping) else _pairs(v, label)
    return TheoryRow(
        theorem=theorem,
        applies=_fmt(applies) if isinstance(applies, bool) or applies is None else "yes",
        hypotheses=_hypotheses(entry.get("hypotheses")),
        predicted=predicted,
        measured=measured,
        verdict=_verdict(entry),
    )


def theory_rows(theory: Any) -> list[TheoryRow]:
    """The theory table of any kind's ``theory`` block: every object in it that states a
    theorem (a ``theorem`` or ``statement`` key) is one row; the ``predictions`` lists of
    ``hessian_spectrum`` are rows too."""
    rows: list[TheoryRow] = []

    def walk(name: str, node: Any) -> None:
        if isinstance(node, Mapping):
            if "theorem" in node or "statement" in node:
                rows.append(_entry_row(name, node))
                return
            for k, v in node.items():
                walk(k, v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(f"{name}[{i}]", v)

    walk("theory", theory)
    return rows


def _numbers(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Dotted paths to the result's scalars and short lists (theory and warnings have
    their own sections; long arrays are summarised by their length)."""
    rows: list[tuple[str, str]] = []

    def walk(path: str, v: Any) -> None:
        if len(rows) >= MAX_NUMBER_ROWS:
            return
        if isinstance(v, Mapping):
            for k, x in v.items():
                walk(f"{path}.{k}" if path else str(k), x)
        elif isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
            for i, x in enumerate(v[:MAX_LIST_SHOWN]):
                walk(f"{path}[{i}]", x)
            if len(v) > MAX_LIST_SHOWN:
                rows.append((path, f"... {len(v)} entries in all"))
        else:
            rows.append((path, _fmt(v)))

    for k, v in result.items():
        if k not in ("theory", "warnings"):
            walk(str(k), v)
    return rows


def _request_summary(req: Mapping[str, Any]) -> list[tuple[str, str]]:
    model = req.get("model") or {}
    arch = model.get("architecture") or {}
    kind = arch.get("type", "?")
    if kind == "mlp":
        shape = (f"mlp {arch.get('input_dim')} -> {arch.get('hidden')} -> "
                 f"{arch.get('output_dim')}, {arch.get('activation')}"
                 f"{', bias' if arch.get('bias') else ''}")
    elif kind == "sequential":
        shape = f"sequential, {len(arch.get('layers') or [])} layers"
    elif kind == "graph":
        shape = f"graph, {len(arch.get('nodes') or [])} nodes"
    else:
        shape = str(kind)
    weights = (f"weights {model['weights']}" if model.get("weights") else
               f"init_seed {model.get('init_seed')}")
    data = req.get("data") or {}
    if "inline" in data:
        source = f"inline, {len((data['inline'] or {}).get('x') or [])} samples"
    elif "synthetic" in data:
        syn = data["synthetic"] or {}
        source = "synthetic " + ", ".join(f"{k} {v}" for k, v in syn.items())
    elif "blob" in data:
        source = f"blob {data['blob']} ({data.get('format', '?')})"
    else:
        source = "?"
    rows = [("kind", str(req.get("kind"))), ("model", f"{shape}; {weights}"),
            ("data", source), ("loss", str(req.get("loss", "mse"))),
            ("dtype", str(req.get("dtype", "float32"))), ("device", str(req.get("device",
                                                                                "auto")))]
    for key in ("batch_size", "seed"):
        if req.get(key) is not None:
            rows.append((key, _fmt(req[key])))
    return rows


def _inline_svg(data: bytes) -> Markup | None:
    """The ``<svg>`` element of a matplotlib SVG (prolog and DOCTYPE dropped), or None
    when it holds anything active or external (then it is shown as an image)."""
    m = _SVG_START.search(data)
    if m is None or _UNSAFE_SVG.search(data):
        return None
    return Markup(data[m.start():].decode("utf-8"))


def _figures(artifacts: Iterable[Artifact]) -> list[dict[str, Any]]:
    arts = list(artifacts)
    svgs = {a.name.rsplit(".", 1)[0]: a for a in arts if a.media_type == "image/svg+xml"}
    figs: list[dict[str, Any]] = []
    for a in arts:
        stem = a.name.rsplit(".", 1)[0]
        if a.media_type == "image/svg+xml":
            if len(a.data) > MAX_FIGURE_BYTES:
                figs.append({"name": a.name, "svg": None, "uri": None})
                continue
            svg = _inline_svg(a.data)
            uri = None if svg is not None else (
                "data:image/svg+xml;base64," + base64.b64encode(a.data).decode())
            figs.append({"name": a.name, "svg": svg, "uri": uri})
        elif a.media_type == "image/png" and stem not in svgs:
            uri = ("data:image/png;base64," + base64.b64encode(a.data).decode()
                   if len(a.data) <= MAX_FIGURE_BYTES else None)
            figs.append({"name": a.name, "svg": None, "uri": uri})
    return figs


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("landscope_service.reports", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    return env.get_template("report.html")


def _when(ts: Any) -> str:
    if isinstance(ts, (int, float)):
        return dt.datetime.fromtimestamp(float(ts), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(ts) if ts else "—"


def report_html(job: Mapping[str, Any], result: Mapping[str, Any],
                artifacts: Sequence[Artifact], *, finished_at: float | None = None) -> str:
    """The report page of a finished job.

    Args:
        job: the job record's fields: ``id``, ``kind``, ``request``, ``metadata``,
            ``created_at`` (UNIX seconds or ISO text).
        result: the kind's JSON result.
        artifacts: the run's files (figures among them).
        finished_at: when the run finished (UNIX seconds), for the header.

    Returns:
        The HTML text: no script, no external reference.
    """
    req = job.get("request") or {}
    theory = result.get("theory")
    warnings = result.get("warnings") or []
    if isinstance(warnings, str):
        warnings = [warnings]
    notes: list[str] = []
    if isinstance(theory, Mapping):
        notes = [str(n) for n in theory.get("notes") or [] if isinstance(n, str)]
        if isinstance(theory.get("note"), str):
            notes.append(theory["note"])
        applies = theory.get("applies")
        if isinstance(applies, list):
            notes = [f"Applies: {a}" for a in applies if isinstance(a, str)] + notes
    verdict = theory.get("verdict") if isinstance(theory, Mapping) else None
    return _template().render(
        job_id=str(job.get("id", "")),
        kind=str(job.get("kind") or req.get("kind") or ""),
        created=_when(job.get("created_at")),
        finished=_when(finished_at),
        metadata=sorted((job.get("metadata") or {}).items()),
        request_rows=_request_summary(req),
        options=sorted((req.get("options") or {}).items()),
        fmt=_fmt,
        numbers=_numbers(result),
        theory=theory_rows(theory) if theory is not None else [],
        verdict=verdict if isinstance(verdict, str) else None,
        notes=notes,
        warnings=[w if isinstance(w, str) else json.dumps(w) for w in warnings],
        figures=_figures(artifacts),
        artifacts=[(a.name, a.media_type, len(a.data)) for a in artifacts],
        request_json=json.dumps(req, indent=2, sort_keys=True),
        result_json=json.dumps(result, indent=2, sort_keys=True),
    )


def report_artifact(job: Mapping[str, Any], result: Mapping[str, Any],
                    artifacts: Sequence[Artifact], *, finished_at: float | None = None
                    ) -> Artifact:
    """:func:`report_html` as the ``report.html`` artifact."""
    html = report_html(job, result, artifacts, finished_at=finished_at)
    return Artifact(REPORT_NAME, "text/html", html.encode("utf-8"))


class _References(HTMLParser):
    """Collects every URL-bearing attribute and style text of a page."""

    URL_ATTRS = frozenset({"href", "src", "xlink:href", "action", "formaction", "data",
                           "poster", "srcset", "background", "cite", "manifest", "ping"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "link", "iframe", "object", "embed", "base", "meta") and not (
                tag == "meta" and all(k in ("charset", "name", "content") for k, _ in attrs)):
            self.found.append(f"<{tag}>")
        for k, v in attrs:
            if v is None:
                continue
            if k in self.URL_ATTRS and not v.startswith(("#", "data:")):
                self.found.append(f"{tag} {k}={v[:80]}")
            if k == "style":
                self._style(v)
            if k.startswith("on"):
                self.found.append(f"{tag} {k} (event handler)")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._style(data)

    def _style(self, css: str) -> None:
        for m in re.finditer(r"@import|url\(\s*['\"]?(?!#|data:)[^)]*\)", css, re.I):
            self.found.append(f"css {m.group(0)[:80]}")


def external_references(html: str) -> list[str]:
    """Every reference of ``html`` to something outside the page: URL attributes other
    than ``#fragment`` and ``data:``, scripts, links, frames, objects, event handlers,
    CSS ``@import`` and ``url()``. XML namespace names (``xmlns``) are not references.
    A self-contained report has none."""
    parser = _References()
    parser.feed(html)
    parser.close()
    return parser.found


def job_report(doc: Mapping[str, Any], result: Mapping[str, Any],
               artifacts: Sequence[Artifact]) -> Artifact | None:
    """The worker's call: :func:`report_artifact` of a finished run, or None (logged)
    when the page cannot be built, so a report never costs the caller a computed result.
    """
    import logging
    import time

    try:
        return report_artifact(doc, result, artifacts, finished_at=time.time())
    except Exception:
        logging.getLogger("landscope.reports").error(
            "report.html not written for %s", doc.get("id"), exc_info=True)
        return None
