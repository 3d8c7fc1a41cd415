"""No module imports another module's private (``_``-prefixed) helper.

A helper used by two modules is public API of one of them (or moves to a shared module);
importing ``_name`` across modules hides a dependency the name says does not exist.
Importing a public name under a private alias (``from .x import y as _y``) is fine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "service" / "landscope_service", ROOT / "client" / "landscope"]


def private_imports(path: Path) -> list[str]:
    """``line: from module import _name`` for every private name ``path`` imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    module = "." * node.level + (node.module or "")
                    found.append(f"{node.lineno}: from {module} import {alias.name}")
    return found


def test_the_check_sees_a_private_import(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("from .a import public, _hidden\nfrom b import c as _c\n")
    assert private_imports(src) == ["1: from .a import _hidden"]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_private_helper_imported_across_modules(package: Path) -> None:
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in sorted(package.rglob("*.py"))
        if (found := private_imports(path))
    }
    assert offenders == {}
