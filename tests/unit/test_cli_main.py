"""The ``landscope`` command line against the real API served in-process (``liveapi``):
output and exit codes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import fakeapi as fk
import pytest
from liveapi import API_KEY, LiveAPI, failed, running, succeeded

from landscope.cli import EXIT_ERROR, EXIT_JOB_FAILED, EXIT_OK, EXIT_USAGE, main

VALID = {
    "kind": "evaluate",
    "model": {"architecture": {"type": "mlp", "input_dim": 2, "hidden": [3], "output_dim": 1}},
    "data": {"synthetic": {"name": "teacher_student", "num_samples": 8, "seed": 0}},
    "metadata": {"run": "r1"},
}

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def env(live_api: LiveAPI, monkeypatch: pytest.MonkeyPatch) -> LiveAPI:
    monkeypatch.setenv("LANDSCOPE_URL", live_api.url)
    monkeypatch.setenv("LANDSCOPE_API_KEY", API_KEY)
    return live_api


@pytest.fixture
def job_file(tmp_path: Path) -> Path:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(VALID))
    return path


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("landscope: ")
    return lines[0]


def test_submit_prints_the_job_id(env: LiveAPI, job_file: Path, capsys: Capture) -> None:
    assert main(["submit", str(job_file)]) == EXIT_OK
    job_id = capsys.readouterr().out.strip()
    stored = env.get(job_id)
    assert stored["status"] == "queued" and stored["metadata"] == VALID["metadata"]
    # the stored request is the submitted one with the schema's defaults filled in
    assert stored["request"]["kind"] == VALID["kind"]
    assert stored["request"]["data"]["synthetic"].items() >= VALID["data"]["synthetic"].items()


def test_submit_json_and_idempotency_key(env: LiveAPI, job_file: Path, capsys: Capture) -> None:
    assert main(["submit", str(job_file), "--json", "--idempotency-key", "k-1"]) == EXIT_OK
    first = json.loads(capsys.readouterr().out)
    assert main(["submit", str(job_file), "--json", "--idempotency-key", "k-1"]) == EXIT_OK
    second = json.loads(capsys.readouterr().out)
    assert first["id"] == second["id"]
    assert first["status"] == "queued"
    assert env.calls("POST")[0].headers["idempotency-key"] == "k-1"


def test_submit_wait_prints_the_result(env: LiveAPI, job_file: Path, capsys: Capture) -> None:
    env.on_submit = lambda job_id: env.apply(job_id, succeeded())
    assert main(["submit", str(job_file), "--wait", "--no-progress"]) == EXIT_OK
    out, err = capsys.readouterr()
    rows = dict(line.split(None, 1) for line in out.splitlines())
    assert rows["loss"] == "0.25"
    assert rows["num_params"] == "41"
    assert rows["per_sample_loss.max"] == "0.9"
    assert rows["theory.applies"] == "[smooth_loss]"
    assert err.startswith("submitted job_")


def test_submit_wait_failed_job_exits_1(env: LiveAPI, job_file: Path, capsys: Capture) -> None:
    env.on_submit = lambda job_id: env.apply(job_id, failed("diverged", "Loss became\nNaN."))
    assert main(["submit", str(job_file), "--wait", "--no-progress"]) == EXIT_JOB_FAILED
    line = _one_error_line(capsys.readouterr().err.split("\n", 1)[1])
    assert "failed: diverged: Loss became NaN." in line


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read job file"), ("{not json", "not valid JSON"), ("[1]", "JSON object")],
)
def test_submit_bad_job_file_is_a_usage_error(
    env: LiveAPI, tmp_path: Path, capsys: Capture, content: str | None, message: str
) -> None:
    path = tmp_path / "job.json"
    if content is not None:
        path.write_text(content)
    assert main(["submit", str(path)]) == EXIT_USAGE
    assert message in _one_error_line(capsys.readouterr().err)
    assert env.requests == []


def test_submit_invalid_request_is_an_api_error(
    env: LiveAPI, tmp_path: Path, capsys: Capture
) -> None:
    path = tmp_path / "job.json"
    arch = {**VALID["model"]["architecture"], "type": "mlp", "hidden": [-1]}  # type: ignore[dict-item]
    path.write_text(json.dumps({**VALID, "model": {"architecture": arch}}))
    assert main(["submit", str(path)]) == EXIT_ERROR
    line = _one_error_line(capsys.readouterr().err)
    assert "UnprocessableEntityError: HTTP 422 validation_error" in line
    assert "model.architecture.hidden.0: Must be between 1 and 65536" in line


def test_status(env: LiveAPI, capsys: Capture) -> None:
    job = env.add_job(**running(0.42, "lanczos", "iter 7"), metadata={"run": "r1"})
    assert main(["status", job["id"]]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"id:        {job['id']}" in out
    assert "status:    running" in out
    assert "progress:  42% lanczos: iter 7" in out
    assert "metadata:  run=r1" in out
    assert main(["status", job["id"], "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["progress"]["fraction"] == 0.42


def test_unknown_job_exits_3(env: LiveAPI, capsys: Capture) -> None:
    assert main(["status", "job_nope"]) == EXIT_ERROR
    line = _one_error_line(capsys.readouterr().err)
    assert line == (
        "landscope: error: NotFoundError: HTTP 404 not_found: No job 'job_nope' for this API key."
    )


@pytest.mark.parametrize(
    ("update", "code"),
    [(succeeded(), EXIT_OK), ({"status": "cancelled"}, EXIT_JOB_FAILED), (failed(), 1)],
)
def test_wait_exit_codes(env: LiveAPI, capsys: Capture, update: dict[str, Any], code: int) -> None:
    job = env.add_job(**update)
    assert main(["wait", job["id"], "--no-progress"]) == code


def test_wait_timeout_exits_3(env: LiveAPI, capsys: Capture) -> None:
    job = env.add_job(**running(0.5))
    assert main(["wait", job["id"], "--timeout", "0.01", "--no-progress"]) == EXIT_ERROR
    assert "is still running after 0.01 s" in _one_error_line(capsys.readouterr().err)


def test_result_json_and_table(env: LiveAPI, capsys: Capture) -> None:
    job = env.add_job(**succeeded())
    assert main(["result", job["id"], "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == fk.EVALUATE_RESULT
    assert main(["result", job["id"], "--table"]) == EXIT_OK
    assert "grad_norm" in capsys.readouterr().out
    assert main(["result", job["id"], "--json", "--table"]) == EXIT_USAGE


def test_result_of_unfinished_or_failed_job(env: LiveAPI, capsys: Capture) -> None:
    unfinished = env.add_job(**running(0.3))
    assert main(["result", unfinished["id"]]) == EXIT_ERROR
    assert "still running (30%" in _one_error_line(capsys.readouterr().err)
    broken = env.add_job(**failed("out_of_memory", "CUDA OOM"))
    assert main(["result", broken["id"]]) == EXIT_JOB_FAILED
    assert "out_of_memory: CUDA OOM" in _one_error_line(capsys.readouterr().err)


def test_cancel(env: LiveAPI, capsys: Capture) -> None:
    job = env.add_job()
    assert main(["cancel", job["id"]]) == EXIT_OK
    assert capsys.readouterr().out == f"{job['id']} cancelled\n"
    assert main(["cancel", job["id"]]) == EXIT_ERROR
    assert "ConflictError: HTTP 409 job_finished" in _one_error_line(capsys.readouterr().err)


def test_list_with_filters(env: LiveAPI, capsys: Capture) -> None:
    env.add_job(metadata={"run": "a"})
    wanted = env.add_job(kind="hessian_spectrum", metadata={"run": "a"})
    env.add_job(kind="hessian_spectrum", metadata={"run": "b"})
    args = ["list", "--status", "queued", "--kind", "hessian_spectrum", "--meta", "run=a"]
    assert main(args) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "KIND", "STATUS", "PROGRESS", "CREATED"]
    assert len(lines) == 2
    assert lines[1].startswith(wanted["id"])
    assert main(["list", "--json", "--limit", "2"]) == EXIT_OK
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_list_bad_arguments(env: LiveAPI, capsys: Capture) -> None:
    assert main(["list", "--meta", "novalue"]) == EXIT_USAGE
    assert "KEY=VALUE" in _one_error_line(capsys.readouterr().err)
    assert main(["list", "--status", "bogus"]) == EXIT_USAGE
    assert "invalid choice" in _one_error_line(capsys.readouterr().err)


def test_artifacts_list_and_download(env: LiveAPI, capsys: Capture, tmp_path: Path) -> None:
    data = b"\x89PNG"
    job = env.add_job(**succeeded(artifacts={"d.png": (data, "image/png")}))
    assert main(["artifacts", job["id"]]) == EXIT_OK
    assert capsys.readouterr().out.split() == ["d.png", "image/png", "4", "B"]
    assert main(["artifacts", job["id"], "--out", str(tmp_path)]) == EXIT_OK
    assert capsys.readouterr().out.strip() == str(tmp_path / "d.png")
    assert (tmp_path / "d.png").read_bytes() == data
    assert main(["artifacts", job["id"], "--out", str(tmp_path), "--name", "x.png"]) == EXIT_ERROR
    assert "no artifact 'x.png'" in _one_error_line(capsys.readouterr().err)


def test_upload(env: LiveAPI, capsys: Capture, tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"abc")
    assert main(["upload", str(path)]) == EXIT_OK
    assert capsys.readouterr().out.strip() == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert main(["upload", str(tmp_path / "missing")]) == EXIT_USAGE


def test_global_url_and_key_flags(live_api: LiveAPI, capsys: Capture, monkeypatch: Any) -> None:
    monkeypatch.delenv("LANDSCOPE_URL", raising=False)
    monkeypatch.delenv("LANDSCOPE_API_KEY", raising=False)
    assert main(["status", "job_x"]) == EXIT_USAGE
    assert "LANDSCOPE_URL" in _one_error_line(capsys.readouterr().err)
    job = live_api.add_job()
    base = ["--url", live_api.url, "--api-key"]
    assert main([*base, API_KEY, "status", job["id"]]) == EXIT_OK
    capsys.readouterr()
    assert main([*base, "wrong", "status", job["id"]]) == EXIT_ERROR
    assert "AuthenticationError: HTTP 401" in _one_error_line(capsys.readouterr().err)


def test_usage_errors_and_help(capsys: Capture) -> None:
    assert main([]) == EXIT_USAGE
    assert "required" in _one_error_line(capsys.readouterr().err)
    assert main(["frobnicate"]) == EXIT_USAGE
    capsys.readouterr()
    assert main(["--help"]) == EXIT_OK
    assert "submit" in capsys.readouterr().out
