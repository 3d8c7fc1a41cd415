"""Every LANDSCOPE_* variable named in the deploy files and docs/deploy.md is a real one.

The known names are parsed from service/landscope_service/settings.py (each field's
``metadata={"env": ...}``) plus the SDK's own variables (string literals in client/), so a
typo such as LANDSCOPE_REDIS_ULR in a manifest fails here instead of being ignored at run time.
"""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

from landscope_service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
_NAME = re.compile(r"\bLANDSCOPE_[A-Z0-9_]*[A-Z0-9]\b")


def settings_variables() -> set[str]:
    tree = ast.parse((ROOT / "service" / "landscope_service" / "settings.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "env" and \
                        isinstance(value, ast.Constant):
                    out.add(value.value)
    return out


def sdk_variables() -> set[str]:
    out = set()
    for path in (ROOT / "client" / "landscope").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    re.fullmatch(r"LANDSCOPE_[A-Z0-9_]+", node.value):
                out.add(node.value)
    return out


def deploy_texts() -> dict[str, str]:
    files = [p for p in (ROOT / "deploy").rglob("*") if p.is_file()]
    files.append(ROOT / "docs" / "deploy.md")
    return {str(p.relative_to(ROOT)): p.read_text() for p in files}


def unknown_variables(texts: dict[str, str], known: set[str]) -> list[str]:
    return sorted(f"{name}: {var}" for name, text in texts.items()
                  for var in set(_NAME.findall(text)) - known)


def test_the_parser_finds_every_setting() -> None:
    parsed = settings_variables()
    assert parsed == {f.metadata["env"] for f in fields(Settings)}
    assert {"LANDSCOPE_REDIS_URL", "LANDSCOPE_API_KEYS_FILE", "LANDSCOPE_STORAGE",
            "LANDSCOPE_GPU_MEMORY_FRACTION"} <= parsed


def test_deploy_files_name_only_real_variables() -> None:
    texts = deploy_texts()
    assert len(texts) >= 15
    mentioned = {v for t in texts.values() for v in _NAME.findall(t)}
    assert len(mentioned) >= 10, "the check would be vacuous"
    assert unknown_variables(texts, settings_variables() | sdk_variables()) == []


def test_a_typo_is_caught() -> None:
    known = settings_variables()
    assert unknown_variables({"x.yaml": "LANDSCOPE_REDIS_ULR: redis://r:6379/0\n"
                                        "LANDSCOPE_STORAGE: redis"}, known) == \
        ["x.yaml: LANDSCOPE_REDIS_ULR"]
