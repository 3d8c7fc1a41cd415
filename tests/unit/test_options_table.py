"""The core's option tables (diagnostics/options): resolve, strict types, bounds, rules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from landscope_service.diagnostics.options import (
    REQUIRED,
    OptionSet,
    Rule,
    array,
    boolean,
    choice,
    group,
    integer,
    number,
    string,
)

INNER = OptionSet("InnerOptions", "inner", {"a": integer(1, "a", ge=0, le=5),
                                            "b": integer(3, "b", ge=0)},
                  rules=(Rule("b", "b >= a + 1", "b={b} must exceed a={a}."),))
TABLE = OptionSet("DemoOptions", "demo", {
    "n": integer(2, "n", ge=1),
    "x": number(0.5, "x", gt=0, lt=1),
    "flag": boolean(False, "flag"),
    "mode": choice("a", ("a", "b"), "mode"),
    "name": string(REQUIRED, "name", min_length=1),
    "opt": number(None, "opt", ge=0, nullable=True),
    "items": array(string(None, "item"), (), "items", max_items=2),
    "inner": group(INNER, "inner"),
}, rules=(Rule("n", "len(items) + n <= 3", "too many: n={n}."),))


def test_defaults_and_resolve() -> None:
    assert TABLE.defaults() == {"n": 2, "x": 0.5, "flag": False, "mode": "a", "opt": None,
                                "items": [], "inner": {"a": 1, "b": 3}}
    out = TABLE.resolve({"name": "k", "x": 1e-3, "inner": {"a": 2}, "items": ["u"]})
    assert out == {"n": 2, "x": 1e-3, "flag": False, "mode": "a", "name": "k", "opt": None,
                   "items": ["u"], "inner": {"a": 2, "b": 3}}
    assert isinstance(TABLE.resolve({"name": "k", "opt": 1})["opt"], float)


@pytest.mark.parametrize(("given", "error", "match"), [
    ({"flag": "yes"}, TypeError, r"flag must be a boolean"),
    ({"x": "0.5"}, TypeError, r"x must be a number"),
    ({"n": True}, TypeError, r"n must be an integer"),
    ({"n": 2.0}, TypeError, r"n must be an integer"),
    ({"x": 0}, ValueError, r"x must be > 0"),
    ({"x": 1.0}, ValueError, r"x must be < 1"),
    ({"x": float("nan")}, ValueError, r"x must be a finite number"),
    ({"n": 0}, ValueError, r"n must be >= 1"),
    ({"mode": "c"}, ValueError, r"mode must be one of 'a', 'b'"),
    ({"items": "ab"}, TypeError, r"items must be a list"),
    ({"items": ["a", "b", "c"]}, ValueError, r"at most 2 items"),
    ({"items": [1]}, TypeError, r"items\[0\] must be a string"),
    ({"inner": {"a": 9}}, ValueError, r"inner\.a must be <= 5"),
    ({"inner": {"c": 1}}, ValueError, r"Unknown options: \['inner\.c'\]"),
    ({"inner": {"a": 3}}, ValueError, r"b=3 must exceed a=3"),
    ({"n": 3, "items": ["u"]}, ValueError, r"too many: n=3"),
    ({"zzz": 1}, ValueError, r"Unknown options: \['zzz'\]"),
    ({"opt": None, "flag": None}, TypeError, r"flag must be a boolean .*got null"),
])
def test_bad_values(given: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        TABLE.resolve({"name": "k", **given})


def test_required_and_mapping() -> None:
    with pytest.raises(ValueError, match="name is required"):
        TABLE.resolve({})
    with pytest.raises(TypeError, match="options must be an object"):
        TABLE.resolve([])  # type: ignore[arg-type]


@pytest.mark.parametrize("expr", ["__import__('os')", "a.b > 1", "a ** 2 > 1", "[a] == 1",
                                  "len(a, b) > 1", "f(a) > 1", "a if a else b"])
def test_rule_language_is_small(expr: str) -> None:
    with pytest.raises(ValueError):
        Rule("a", expr, "m")


def test_rule_names_must_be_options() -> None:
    with pytest.raises(ValueError, match="unknown options"):
        OptionSet("X", "x", {"a": integer(1, "a")}, rules=(Rule("a", "a < b", "m"),))


def test_tables_import_without_torch() -> None:
    code = ("import sys\n"
            "from landscope_service.diagnostics.options import hessian_spectrum, evaluate\n"
            "from landscope_service.diagnostics import kind_names\n"
            "kind_names()\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "False"
