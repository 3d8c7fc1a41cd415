"""SDK jobs and blobs against the fake API: wait, results, listing, artifacts, types."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import fakeapi as fk
import pytest

import landscope
from landscope import (
    EvaluateResult,
    Job,
    JobFailedError,
    LandscopeError,
    NotFoundError,
    WaitTimeout,
)
from landscope._progress import LineProgress

make_client = fk.make_client

VALID = {
    "kind": "evaluate",
    "model": {"architecture": {"type": "mlp", "input_dim": 2, "hidden": [3], "output_dim": 1}},
    "data": {"synthetic": {"name": "teacher_student", "num_samples": 8, "seed": 0}},
}


# -- wait ------------------------------------------------------------------------------


def test_wait_polls_with_growing_interval_until_succeeded(fake_api: Any, clock: Any) -> None:
    job = fake_api.add_job()
    fake_api.script(
        job["id"],
        {},
        fk.running(0.1, "build"),
        fk.running(0.6, "lanczos", "iteration 3"),
        fk.succeeded(),
    )
    seen: list[Job] = []
    done = make_client(fake_api, clock).jobs.wait(
        job["id"], poll_interval=1.0, max_poll_interval=10.0, progress=seen.append
    )
    assert done.status == "succeeded"
    assert [j.status for j in seen] == ["queued", "running", "running", "succeeded"]
    assert seen[2].progress.stage == "lanczos"
    assert seen[2].progress.message == "iteration 3"
    assert clock.sleeps == [1.0, 1.5, 2.25]


def test_wait_interval_is_capped(fake_api: Any, clock: Any) -> None:
    job = fake_api.add_job()
    fake_api.script(job["id"], *([fk.running(0.5)] * 8), fk.succeeded())
    make_client(fake_api, clock).jobs.wait(job["id"], poll_interval=1.0, max_poll_interval=2.0)
    assert clock.sleeps == [1.0, 1.5, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]


@pytest.mark.parametrize(
    ("update", "status"),
    [
        (fk.failed("out_of_memory", "CUDA OOM"), "failed"),
        ({"status": "cancelled", "cancel_requested": True}, "cancelled"),
        (fk.succeeded(), "succeeded"),
    ],
)
def test_wait_returns_every_final_status(
    fake_api: Any, clock: Any, update: dict[str, Any], status: str
) -> None:
    job = fake_api.add_job()
    fake_api.script(job["id"], fk.running(0.5), update)
    done = make_client(fake_api, clock).jobs.wait(job["id"])
    assert done.status == status
    assert done.is_finished
    assert len(clock.sleeps) == 1


def test_wait_deadline_raises_wait_timeout_with_last_state(fake_api: Any, clock: Any) -> None:
    job = fake_api.add_job(**fk.running(0.4, "train"))
    with pytest.raises(WaitTimeout) as info:
        make_client(fake_api, clock).jobs.wait(job["id"], timeout=3.0, poll_interval=1.0)
    assert clock.sleeps == [1.0, 1.5, 0.5]
    assert info.value.job.status == "running"
    assert info.value.timeout == 3.0
    assert isinstance(info.value, TimeoutError)
    assert "still running after 3 s" in str(info.value)
    assert "40%" in str(info.value)


def test_wait_on_a_finished_job_object_sends_nothing(fake_api: Any, clock: Any) -> None:
    finished = Job.from_json({**fk.new_job("evaluate", {}), **fk.succeeded()})
    assert make_client(fake_api, clock).jobs.wait(finished) is finished
    assert fake_api.requests == []


def test_wait_rejects_bad_intervals(fake_api: Any, clock: Any) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        make_client(fake_api, clock).jobs.wait("job_A", poll_interval=0)


def test_result_returns_the_typed_result(fake_api: Any, clock: Any) -> None:
    job = fake_api.add_job()
    fake_api.script(job["id"], fk.succeeded())
    client = make_client(fake_api, clock)
    result = client.jobs.result(job["id"], EvaluateResult)
    assert isinstance(result, EvaluateResult)
    assert result.loss == 0.25
    assert result.num_params == 41
    assert result.per_sample_loss.max == 0.9
    assert result.theory == {"applies": ["smooth_loss"]}
    assert client.jobs.result(job["id"]) == result


@pytest.mark.parametrize(
    ("update", "message"),
    [
        (fk.failed("diverged", "Loss became NaN."), "failed: diverged: Loss became NaN."),
        ({"status": "cancelled"}, "was cancelled"),
    ],
)
def test_result_raises_job_failed_error(
    fake_api: Any, clock: Any, update: dict[str, Any], message: str
) -> None:
    job = fake_api.add_job(**update)
    with pytest.raises(JobFailedError, match=message) as info:
        make_client(fake_api, clock).jobs.result(job["id"])
    assert info.value.job.id == job["id"]


def test_progress_line_without_tqdm(
    fake_api: Any, clock: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    job = fake_api.add_job()
    fake_api.script(job["id"], fk.running(0.5, "lanczos"), fk.succeeded())
    make_client(fake_api, clock).jobs.wait(job["id"], progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0].startswith(f"{job['id']} [############............]  50.0% running lanczos")
    assert "100.0% succeeded" in lines[1]


def test_progress_line_on_a_tty_redraws_in_place() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    bar = LineProgress(stream, width=4)
    bar.update(Job.from_json({**fk.new_job("evaluate", {}), **fk.running(0.5, "build")}))
    bar.update(Job.from_json({**fk.new_job("evaluate", {}), **fk.succeeded()}))
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 2
    assert "[##..]  50.0% running build" in text
    assert text.endswith("100.0% succeeded done\n")


def test_progress_with_tqdm(fake_api: Any, clock: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    job = fake_api.add_job()
    fake_api.script(job["id"], fk.running(0.5, "lanczos"), fk.succeeded())
    make_client(fake_api, clock).jobs.wait(job["id"], progress=True)
    err = capsys.readouterr().err
    assert job["id"] in err
    assert "50%" in err
    assert "100%" in err


# -- cancel, list ------------------------------------------------------------------------


def test_cancel_queued_and_running(fake_api: Any, clock: Any) -> None:
    client = make_client(fake_api, clock)
    queued = client.jobs.submit(VALID)
    assert client.jobs.cancel(queued).status == "cancelled"
    running = fake_api.add_job(**fk.running(0.2))
    after = client.jobs.cancel(running["id"])
    assert after.status == "running"
    assert after.cancel_requested is True


def test_list_follows_cursors_newest_first(fake_api: Any, clock: Any) -> None:
    ids = [fake_api.add_job()["id"] for _ in range(5)]
    client = make_client(fake_api, clock)
    listed = [job.id for job in client.jobs.list(limit=2)]
    assert listed == list(reversed(ids))
    cursors = [c.query.get("cursor") for c in fake_api.calls("GET", "/v1/jobs")]
    assert cursors == [None, ["c2"], ["c4"]]
    page = client.jobs.list_page(limit=2)
    assert len(page.items) == 2
    assert page.has_more
    last = client.jobs.list_page(limit=2, cursor="c4")
    assert last.next_cursor is None
    assert [j.id for j in last.items] == [ids[0]]


def test_list_filters(fake_api: Any, clock: Any) -> None:
    fake_api.add_job(metadata={"run": "a"})
    wanted = fake_api.add_job(kind="hessian_spectrum", metadata={"run": "a", "commit": "x"})
    fake_api.add_job(kind="hessian_spectrum", metadata={"run": "b"}, status="failed")
    client = make_client(fake_api, clock)
    found = list(client.jobs.list(status="queued", kind="hessian_spectrum", metadata={"run": "a"}))
    assert [j.id for j in found] == [wanted["id"]]
    query = fake_api.calls("GET", "/v1/jobs")[-1].query
    assert query == {"status": ["queued"], "kind": ["hessian_spectrum"], "metadata.run": ["a"]}


def test_list_stops_on_a_repeated_cursor(fake_api: Any, clock: Any) -> None:
    page = {"items": [], "next_cursor": "same"}
    fake_api.inject("GET", "/v1/jobs", 200, page, times=2, content_type="application/json")
    with pytest.raises(landscope.InvalidResponseError, match="same cursor"):
        list(make_client(fake_api, clock).jobs.list())


# -- artifacts and blobs -----------------------------------------------------------------


def _job_with_artifacts(fake_api: Any) -> dict[str, Any]:
    files = {
        "density.png": (b"\x89PNG fake", "image/png"),
        "eigs.json": (b"[1, 2]", "application/json"),
    }
    arts = [
        {"name": n, "media_type": t, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
        for n, (b, t) in files.items()
    ]
    job = fake_api.add_job(**fk.succeeded(), artifacts=arts)
    for name, value in files.items():
        fake_api.artifacts[(job["id"], name)] = value
    return job


def test_artifact_bytes_and_download(fake_api: Any, clock: Any, tmp_path: Path) -> None:
    job = _job_with_artifacts(fake_api)
    client = make_client(fake_api, clock)
    assert client.jobs.artifact(job["id"], "eigs.json") == b"[1, 2]"
    paths = client.jobs.download_artifacts(job["id"], tmp_path / "out")
    assert [p.name for p in paths] == ["density.png", "eigs.json"]
    assert paths[0].read_bytes() == b"\x89PNG fake"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["density.png", "eigs.json"]
    only = client.jobs.download_artifacts(job["id"], tmp_path / "one", names=["eigs.json"])
    assert [p.name for p in only] == ["eigs.json"]
    with pytest.raises(KeyError, match=r"has no artifact 'nope\.png'"):
        client.jobs.download_artifacts(job["id"], tmp_path, names=["nope.png"])
    with pytest.raises(NotFoundError):
        client.jobs.artifact(job["id"], "nope.png")


def test_download_refuses_unsafe_artifact_names(fake_api: Any, clock: Any, tmp_path: Path) -> None:
    art = {"name": "../evil", "media_type": "text/plain", "size": 1, "sha256": ""}
    job = fake_api.add_job(**fk.succeeded(), artifacts=[art])
    fake_api.artifacts[(job["id"], "../evil")] = (b"x", "text/plain")
    with pytest.raises(landscope.InvalidResponseError, match="unsafe name"):
        make_client(fake_api, clock).jobs.download_artifacts(job["id"], tmp_path / "d")
    assert not (tmp_path / "evil").exists()


def test_blob_upload_is_content_addressed(fake_api: Any, clock: Any, tmp_path: Path) -> None:
    client = make_client(fake_api, clock)
    data = b"weights" * 10
    blob = client.blobs.upload(data)
    assert blob.id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert blob.size == len(data)
    assert client.blobs.upload(io.BytesIO(data)).id == blob.id
    (tmp_path / "w.bin").write_bytes(data)
    assert client.blobs.upload(str(tmp_path / "w.bin")).id == blob.id
    again = client.blobs.get(blob)
    assert again.id == blob.id
    assert again.created_at is not None
    assert fake_api.calls("POST")[0].headers["content-type"] == "application/octet-stream"


# -- types -------------------------------------------------------------------------------


def test_job_round_trips_through_json() -> None:
    doc = {**fk.new_job("evaluate", VALID), **fk.succeeded()}
    doc["artifacts"] = [{"name": "a.png", "media_type": "image/png", "size": 3, "sha256": "ab"}]
    job = Job.from_json(doc)
    assert job.created_at is not None and job.created_at.tzinfo is not None
    assert Job.from_json(job.to_json()) == job
    assert job.artifact_info("a.png").size == 3


def test_job_from_json_rejects_missing_fields() -> None:
    with pytest.raises(landscope.InvalidResponseError, match="no 'id' field"):
        Job.from_json({"kind": "evaluate", "status": "queued"})
    with pytest.raises(landscope.InvalidResponseError, match="timestamp"):
        Job.from_json({**fk.new_job("evaluate", {}), "created_at": 5})


def test_typed_result_lookup_and_errors() -> None:
    ok = Job.from_json({**fk.new_job("evaluate", {}), **fk.succeeded()})
    assert isinstance(ok.typed_result(), EvaluateResult)
    queued = Job.from_json(fk.new_job("evaluate", {}))
    with pytest.raises(LandscopeError, match="no result yet"):
        queued.typed_result()
    odd = Job.from_json({**fk.new_job("future_kind", {}), **fk.succeeded({"x": 1})})
    with pytest.raises(LandscopeError, match="no typed classes for kind 'future_kind'"):
        odd.typed_result()
    bad = Job.from_json({**fk.new_job("Evil.Kind", {}), **fk.succeeded({"x": 1})})
    with pytest.raises(LandscopeError, match="Not a job kind name"):
        bad.typed_result()
    broken = Job.from_json({**fk.new_job("evaluate", {}), **fk.succeeded({"loss": "high"})})
    with pytest.raises(landscope.InvalidResponseError, match=r"result\.loss"):
        broken.typed_result()


def test_kinds_are_lazy() -> None:
    code = (
        "import sys, landscope, landscope.kinds as k\n"
        "print(sorted(m for m in sys.modules if m.startswith('landscope.kinds.')\n"
        "             and not m.startswith('landscope.kinds._')))\n"
        "print(k.EvaluateResult is landscope.EvaluateResult)\n"
        "print(k.options_class('evaluate')().to_json())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout.splitlines()
    assert out == ["['landscope.kinds.evaluate']", "True", "{}"]
    with pytest.raises(AttributeError):
        _ = landscope.kinds.NoSuchThingResult
