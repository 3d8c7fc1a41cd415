"""``landscope submit job.json --wait --output result.json`` for pipelines: the file holds
the job whatever its final status, the exit code says which (against the real API served
in-process, ``liveapi``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from liveapi import API_KEY, LiveAPI, failed, succeeded

from landscope.cli import EXIT_ERROR, EXIT_JOB_FAILED, EXIT_OK, EXIT_USAGE, main

VALID = {
    "kind": "evaluate",
    "model": {"architecture": {"type": "mlp", "input_dim": 2, "hidden": [3], "output_dim": 1}},
    "data": {"synthetic": {"name": "teacher_student", "num_samples": 8, "seed": 0}},
}


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


def test_submit_wait_output_succeeded(env: LiveAPI, job_file: Path, tmp_path: Path) -> None:
    env.on_submit = lambda job_id: env.apply(job_id, succeeded())
    out = tmp_path / "result.json"
    assert main(["submit", str(job_file), "--wait", "--no-progress", "--output", str(out)]) \
        == EXIT_OK
    job = json.loads(out.read_text())
    assert job["status"] == "succeeded" and job["result"]["loss"] == 0.25
    assert job["id"].startswith("job_")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no tmp left


def test_output_written_for_a_failed_job_with_exit_1(env: LiveAPI, job_file: Path,
                                                     tmp_path: Path) -> None:
    env.on_submit = lambda job_id: env.apply(job_id, failed("diverged", "NaN."))
    out = tmp_path / "result.json"
    assert main(["submit", str(job_file), "--wait", "--no-progress", "-o", str(out)]) \
        == EXIT_JOB_FAILED
    job = json.loads(out.read_text())
    assert job["status"] == "failed" and job["error"]["code"] == "diverged"


def test_output_without_wait_and_from_result(env: LiveAPI, job_file: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    queued = tmp_path / "queued.json"
    assert main(["submit", str(job_file), "--output", str(queued)]) == EXIT_OK
    job_id = capsys.readouterr().out.strip()
    assert json.loads(queued.read_text())["status"] == "queued"
    env.apply(job_id, succeeded())
    final = tmp_path / "final.json"
    assert main(["result", job_id, "--output", str(final)]) == EXIT_OK
    assert json.loads(final.read_text())["result"]["loss"] == 0.25


def test_no_file_on_usage_or_api_errors(env: LiveAPI, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    assert main(["submit", str(tmp_path / "missing.json"), "--output", str(out)]) == EXIT_USAGE
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**VALID, "kind": "telepathy"}))
    assert main(["submit", str(bad), "--wait", "--output", str(out)]) == EXIT_ERROR
    assert not out.exists()


def test_unwritable_output_is_exit_3(env: LiveAPI, job_file: Path, tmp_path: Path) -> None:
    env.on_submit = lambda job_id: env.apply(job_id, succeeded())
    out = tmp_path / "no-such-dir" / "result.json"
    assert main(["submit", str(job_file), "--wait", "--no-progress", "--output", str(out)]) \
        == EXIT_ERROR
