from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from landscope_service.settings import SettingsError, load_settings


def test_defaults_serve_one_machine() -> None:
    s = load_settings(environ={})
    assert s.redis_url.startswith("redis://127.0.0.1")
    assert s.max_attempts >= 1 and s.lease_s > 0


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"LANDSCOPE_MAX_ATTEMPTS": "zero"}, "LANDSCOPE_MAX_ATTEMPTS"),
        ({"LANDSCOPE_MAX_ATTEMPTS": "0"}, "between 1 and 20"),
        ({"LANDSCOPE_REDIS_URL": "localhost:6379"}, "LANDSCOPE_REDIS_URL"),
        ({"LANDSCOPE_API_KEYS": "nocolon"}, "tenant:key"),
        ({"LANDSCOPE_STORAGE": "s3"}, "local, redis"),
        ({"LANDSCOPE_LEASE_S": "-1"}, "LANDSCOPE_LEASE_S"),
        ({"LANDSCOPE_SOFT_TIME_LIMIT_S": "100", "LANDSCOPE_HARD_TIME_LIMIT_S": "50"},
         "HARD_TIME_LIMIT"),
        ({"LANDSCOPE_API_KEYS_FILE": "/nonexistent/keys"}, "no such file"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        load_settings(environ=env)


def test_keys_file_holds_hashes(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# comment\nacme:{hashlib.sha256(b'secret').hexdigest()}\n")
    s = load_settings(environ={"LANDSCOPE_API_KEYS_FILE": str(path),
                               "LANDSCOPE_API_KEYS": "dev:devkey"})
    assert s.tenant_for("secret") == "acme"
    assert s.tenant_for("devkey") == "dev"
    assert s.tenant_for("wrong") is None
    path.write_text("acme:not-a-hash\n")
    with pytest.raises(SettingsError, match="sha256"):
        load_settings(environ={"LANDSCOPE_API_KEYS_FILE": str(path)})


def test_keys_file_is_reread_only_when_it_changes(tmp_path: Path) -> None:
    import os

    path = tmp_path / "keys"
    path.write_text(f"acme:{hashlib.sha256(b'one').hexdigest()}\n")
    s = load_settings(environ={"LANDSCOPE_API_KEYS_FILE": str(path)})
    assert s.tenant_for("one") == "acme"
    path.write_text(f"acme:{hashlib.sha256(b'two').hexdigest()}\n")
    os.utime(path, (1, 1))  # a different mtime: rotated
    assert s.tenant_for("two") == "acme" and s.tenant_for("one") is None
    path.write_text("acme:half-written\n")
    os.utime(path, (2, 2))
    assert s.tenant_for("two") == "acme"  # the last good file stays in force


def test_readme_documents_every_setting() -> None:
    from dataclasses import fields

    from landscope_service.settings import Settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    names = [f.metadata["env"] for f in fields(Settings)]
    missing = [n for n in names if f"`{n}`" not in readme]
    assert missing == [], f"add these to the README's configuration table: {missing}"
