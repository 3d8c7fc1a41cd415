"""The layering rules of DESIGN.md, checked on the source and on live imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "service" / "landscope_service" / "diagnostics"
SDK = ROOT / "client" / "landscope"

FORBIDDEN_IN_CORE = ("flask", "flask_smorest", "celery", "kombu", "redis", "marshmallow",
                     "requests", "landscope_service.api", "landscope_service.worker",
                     "landscope_service.jobs", "landscope_service.storage",
                     "landscope_service.modelspec", "landscope_service.settings")
FORBIDDEN_IN_SDK = ("landscope_service", "flask", "celery", "marshmallow", "redis", "kombu")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                pkg = path.relative_to(ROOT / "service").with_suffix("").parts[: -node.level]
                names.append(".".join([*pkg, node.module or ""]).rstrip("."))
            elif node.module:
                names.append(node.module)
    return names


def _violations(folder: Path, forbidden: tuple[str, ...], root_for_rel: Path) -> list[str]:
    bad = []
    for path in folder.rglob("*.py"):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    return bad


def test_core_imports_no_service_layer() -> None:
    assert _violations(CORE, FORBIDDEN_IN_CORE, ROOT / "service") == []


def test_sdk_imports_no_service_code() -> None:
    bad = []
    for path in SDK.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and
                not node.level else [])
            bad += [f"{path.name}: {m}" for m in mods
                    if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_IN_SDK)]
    assert bad == []


def test_core_import_pulls_no_service_modules() -> None:
    code = (
        "import sys, landscope_service.diagnostics as d\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('flask', 'celery', 'redis', 'marshmallow', 'kombu')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_api_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "from landscope_service.api import create_app\n"
        "from landscope_service.settings import load_settings\n"
        "app = create_app(settings=load_settings(environ={}))\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
