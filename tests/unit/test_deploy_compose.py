"""Offline validation of deploy/compose.yaml.

The file is loaded as Docker Compose loads it: YAML merge keys resolved, `${VAR:-default}`
interpolated (once with the defaults alone, once with deploy/.env.example), then parsed by
compose-spec, a strict parser of the Compose Specification (unknown keys, bad durations,
bad device requests fail). What the specification cannot know (healthchecks, secrets from
files, the GPU reservation, the shared volume, the settings' values) is checked by hand.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_spec import PyCompose

from landscope_service.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
OURS = ("api", "worker-cpu", "worker-gpu", "worker-webhooks")
_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}"
                  r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|(?P<dollar>\$))")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation: $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m["dollar"]:
            return "$"
        name = m["braced"] or m["plain"]
        op, arg = m["op"] or "", m["arg"] or ""
        have = env.get(name)
        if op == ":-":
            return have if have else arg
        if op == "-":
            return have if have is not None else arg
        if op in (":?", "?"):
            if not have:
                raise ValueError(f"{name}: {arg}")
            return have
        return have or ""

    return _VAR.sub(sub, value)


def _raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # resolves <<: merge keys


def _env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r}"
            out[key.strip()] = value.strip()
    return out


def _validate(doc: dict[str, Any]) -> PyCompose:
    compose = PyCompose.from_json(json.dumps(doc))
    compose.to_spec()  # the pydantic model of the spec as well
    return compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return interpolate(_raw(), {})


@pytest.mark.parametrize("env", ["defaults", "env.example"])
def test_compose_file_passes_the_compose_spec(env: str) -> None:
    doc = interpolate(_raw(), {} if env == "defaults" else _env_example())
    parsed = _validate(doc)
    assert sorted(parsed.service_names()) == sorted(
        ["redis", "api", "worker-cpu", "worker-gpu", "worker-webhooks", "flower"])


def test_the_validator_rejects_mistakes(compose: dict[str, Any]) -> None:
    mistakes = [
        lambda d: d["services"]["api"].update(healthchek=d["services"]["api"].pop("healthcheck")),
        lambda d: d["services"]["redis"]["healthcheck"].update(interval="often"),
        lambda d: d["secrets"]["api_keys"].update(path=d["secrets"]["api_keys"].pop("file")),
        lambda d: d["services"]["worker-gpu"]["deploy"]["resources"]["reservations"][
            "devices"][0].update(capabilities="gpu"),
    ]
    for mutate in mistakes:
        bad = copy.deepcopy(compose)
        mutate(bad)
        with pytest.raises(ValueError):
            _validate(bad)


def test_every_variable_has_a_default_and_is_in_env_example() -> None:
    text = COMPOSE.read_text()
    used = {m["braced"] for m in _VAR.finditer(text) if m["braced"]}
    plain = {m["plain"] for m in _VAR.finditer(text) if m["plain"]}
    assert not plain, f"use ${{VAR:-default}}, not $VAR: {plain}"
    for m in _VAR.finditer(text):
        if m["braced"]:
            assert m["op"] == ":-", f"{m[0]}: give it a default so .env stays optional"
    assert used == set(_env_example()), "deploy/.env.example documents exactly the variables used"


def test_every_service_has_a_healthcheck_and_restarts(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        check = svc["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
        assert svc["restart"] in ("unless-stopped", "always"), name


def test_redis_persists_with_aof_and_never_evicts(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    cmd = redis["command"]
    assert cmd[0] == "redis-server"
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert cmd[cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(v.split(":")[0] in compose["volumes"] and v.split(":")[1] == "/data"
               for v in redis["volumes"])
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "ports" not in redis, "Redis has no password here: keep it off the host's ports"


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        image = svc["image"]
        _, _, tag = image.rpartition(":")
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image}"
    for name in OURS:
        build = compose["services"][name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file(), name


def test_our_services_wait_for_a_healthy_redis(compose: dict[str, Any]) -> None:
    for name in (*OURS, "flower"):
        assert compose["services"][name]["depends_on"]["redis"]["condition"] == \
            "service_healthy", name


def test_api_runs_gunicorn_with_keys_from_a_file_secret(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    cmd = api["command"]
    assert cmd[0] == "api" and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    container_port = cmd[cmd.index("--port") + 1]
    assert any(p.endswith(f":{container_port}") for p in api["ports"])
    assert container_port in api["healthcheck"]["test"][-1] and "/healthz" in \
        api["healthcheck"]["test"][-1]
    assert api["secrets"] == ["api_keys"]
    assert api["environment"]["LANDSCOPE_API_KEYS_FILE"] == "/run/secrets/api_keys"
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"file"}, f"secret {name} must come from a file"
        path = (COMPOSE.parent / secret["file"]).resolve()
        assert path.parent == (DEPLOY / "secrets").resolve()
    assert (DEPLOY / "secrets" / "README").is_file()
    ignored = (DEPLOY / ".gitignore").read_text().splitlines()
    assert "/secrets/*" in ignored and "/.env" in ignored


def test_no_key_or_password_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    assert "LANDSCOPE_API_KEYS:" not in text and "LANDSCOPE_API_KEYS=" not in text
    assert not re.search(r"\b[0-9a-f]{64}\b", text), "a key hash belongs in the secret file"
    assert not re.search(r"redis://[^/\s]*@", text), "no password in a Redis URL"
    for name, svc in compose["services"].items():
        for var, value in (svc.get("environment") or {}).items():
            if re.search(r"KEY|TOKEN|PASSWORD|SECRET", var):
                assert var.endswith("_FILE") and str(value).startswith("/run/secrets/"), \
                    f"{name}: {var}"
        assert not any("basic_auth" in str(c).lower() or "basic-auth" in str(c).lower()
                       for c in svc.get("command") or []), name


def test_workers_queues_pools_and_gpu_reservation(compose: dict[str, Any]) -> None:
    hooks = compose["services"]["worker-webhooks"]  # deliveries never wait behind a job
    assert hooks["environment"]["WORKER_QUEUES"] == "webhooks" and "deploy" not in hooks
    consumed = {q for svc in compose["services"].values()
                for q in str(svc.get("environment", {}).get("WORKER_QUEUES", "")).split(",")}
    from landscope_service.jobs.events import WEBHOOK_QUEUE

    assert {"cpu", "gpu", WEBHOOK_QUEUE} <= consumed  # every queue the API sends to
    cpu, gpu = compose["services"]["worker-cpu"], compose["services"]["worker-gpu"]
    assert cpu["environment"]["WORKER_QUEUES"] == "cpu"
    assert cpu["environment"]["WORKER_POOL"] == "prefork"
    assert "deploy" not in cpu
    assert gpu["environment"]["WORKER_QUEUES"] == "gpu"
    # One process per GPU with --pool solo (the entrypoint refuses any other pool).
    assert gpu["environment"]["WORKER_POOL"] == "solo"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert device.get("count") == "all" or device.get("device_ids")
    assert float(gpu["environment"]["LANDSCOPE_GPU_MEMORY_FRACTION"]) > 0
    for w in (cpu, gpu):
        assert w["image"].startswith("landscope-worker:")
        assert w["healthcheck"]["test"] == ["CMD", "landscope-worker-healthcheck"]
        # Warm shutdown: long enough for a running job step to end.
        grace = w["stop_grace_period"]
        assert re.fullmatch(r"\d+m", grace) and int(grace[:-1]) >= 5


def test_api_and_workers_share_the_blob_store(compose: dict[str, Any]) -> None:
    mounts = []
    for name in OURS:
        svc = compose["services"][name]
        env = svc["environment"]
        if env["LANDSCOPE_STORAGE"] == "redis":
            continue
        data_dir = env["LANDSCOPE_DATA_DIR"]
        (volume,) = [v.split(":")[0] for v in svc["volumes"] if v.split(":")[1] == data_dir]
        assert volume in compose["volumes"], f"{name}: {data_dir} must be a named volume"
        mounts.append(volume)
    # Either every service reads the same Redis store, or every one mounts the same volume.
    assert len(mounts) in (0, len(OURS)) and len(set(mounts)) <= 1, mounts


def test_everyone_uses_the_same_redis(compose: dict[str, Any]) -> None:
    urls = {compose["services"][n]["environment"]["LANDSCOPE_REDIS_URL"] for n in OURS}
    assert len(urls) == 1
    (url,) = urls
    assert url.startswith("redis://redis:6379/")
    flower = compose["services"]["flower"]["command"]
    assert f"--broker={url}" in flower
    assert all(p.startswith("127.0.0.1:") for p in compose["services"]["flower"]["ports"])


@pytest.mark.parametrize("env", ["defaults", "env.example"])
def test_service_environments_are_valid_settings(env: str, tmp_path: Path) -> None:
    doc = interpolate(_raw(), {} if env == "defaults" else _env_example())
    keys = tmp_path / "api_keys"
    keys.write_text("tenant:" + "ab" * 32 + "\n")
    for name in OURS:
        environ = {k: str(v) for k, v in doc["services"][name]["environment"].items()}
        if "LANDSCOPE_API_KEYS_FILE" in environ:
            environ["LANDSCOPE_API_KEYS_FILE"] = str(keys)
        load_settings(environ=environ)  # raises SettingsError naming the bad variable
