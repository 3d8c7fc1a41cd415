"""SDK jobs and blobs against the real API served in-process (``liveapi``): wait, results,
listing, artifacts, types. Job states move one step per sleep of the test's clock; the fake
API remains only where a malformed server answer must be injected."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import fakeapi as fk
import pytest
from liveapi import LiveAPI, LiveClock, cancelled, failed, live_client, running, succeeded

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

VALID = {
    "kind": "evaluate",
    "model": {"architecture": {"type": "mlp", "input_dim": 2, "hidden": [3], "output_dim": 1}},
    "data": {"synthetic": {"name": "teacher_student", "num_samples": 8, "seed": 0}},
}


# -- wait ------------------------------------------------------------------------------


def test_wait_polls_with_growing_interval_until_succeeded(
    live_api: LiveAPI, live_clock: LiveClock
) -> None:
    job = live_api.add_job()
    live_api.script(
        job["id"],
        running(0.1, "build"),
        running(0.6, "lanczos", "iteration 3"),
        succeeded(),
    )
    seen: list[Job] = []
    done = live_client(live_api, live_clock).jobs.wait(
        job["id"], poll_interval=1.0, max_poll_interval=10.0, progress=seen.append,
        long_poll=False,  # the server would hold each poll in real time
    )
    assert done.status == "succeeded"
    assert [j.status for j in seen] == ["queued", "running", "running", "succeeded"]
    assert seen[2].progress.stage == "lanczos"
    assert seen[2].progress.message == "iteration 3"
    assert live_clock.sleeps == [1.0, 1.5, 2.25]
    polls = live_api.calls("GET", f"/v1/jobs/{job['id']}")
    assert len(polls) == 4 and all("wait" not in c.query for c in polls)


def test_wait_interval_is_capped(live_api: LiveAPI, live_clock: LiveClock) -> None:
    job = live_api.add_job()
    live_api.script(job["id"], *([running(0.5)] * 7), succeeded())
    live_client(live_api, live_clock).jobs.wait(
        job["id"], poll_interval=1.0, max_poll_interval=2.0, long_poll=False
    )
    assert live_clock.sleeps == [1.0, 1.5, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]


def test_long_poll_of_a_finished_job_answers_at_once(
    live_api: LiveAPI, live_clock: LiveClock
) -> None:
    job = live_api.add_job(**succeeded())
    done = live_client(live_api, live_clock).jobs.wait(job["id"], poll_interval=30.0,
                                                       max_poll_interval=30.0)
    assert done.status == "succeeded" and live_clock.sleeps == []
    assert [float(c.query["wait"][0]) for c in live_api.calls("GET")] == [30.0]


@pytest.mark.parametrize(
    ("update", "status"),
    [
        (failed("out_of_memory", "CUDA OOM"), "failed"),
        (cancelled(requested=True), "cancelled"),
        (succeeded(), "succeeded"),
    ],
)
def test_wait_returns_every_final_status(
    live_api: LiveAPI, live_clock: LiveClock, update: dict[str, Any], status: str
) -> None:
    job = live_api.add_job(**running(0.5))
    live_api.script(job["id"], update)
    done = live_client(live_api, live_clock).jobs.wait(job["id"], long_poll=False)
    assert done.status == status
    assert done.is_finished
    assert len(live_clock.sleeps) == 1


def test_wait_deadline_raises_wait_timeout_with_last_state(
    live_api: LiveAPI, live_clock: LiveClock
) -> None:
    job = live_api.add_job(**running(0.4, "train"))
    with pytest.raises(WaitTimeout) as info:
        live_client(live_api, live_clock).jobs.wait(job["id"], timeout=3.0, poll_interval=1.0,
                                                    long_poll=False)
    assert live_clock.sleeps == [1.0, 1.5, 0.5]
    assert info.value.job.status == "running"
    assert info.value.timeout == 3.0
    assert isinstance(info.value, TimeoutError)
    assert "still running after 3 s" in str(info.value)
    assert "40%" in str(info.value)


def test_wait_on_a_finished_job_object_sends_nothing(
    live_api: LiveAPI, live_clock: LiveClock
) -> None:
    finished = Job.from_json({**fk.new_job("evaluate", {}), **fk.succeeded()})
    assert live_client(live_api, live_clock).jobs.wait(finished) is finished
    assert live_api.requests == []


def test_wait_rejects_bad_intervals(live_api: LiveAPI, live_clock: LiveClock) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        live_client(live_api, live_clock).jobs.wait("job_A", poll_interval=0)
    assert live_api.requests == []


def test_result_returns_the_typed_result(live_api: LiveAPI, live_clock: LiveClock) -> None:
    job = live_api.add_job(**succeeded())
    client = live_client(live_api, live_clock)
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
        (failed("diverged", "Loss became NaN."), "failed: diverged: Loss became NaN."),
        (cancelled(), "was cancelled"),
    ],
)
def test_result_raises_job_failed_error(
    live_api: LiveAPI, live_clock: LiveClock, update: dict[str, Any], message: str
) -> None:
    job = live_api.add_job(**update)
    with pytest.raises(JobFailedError, match=message) as info:
        live_client(live_api, live_clock).jobs.result(job["id"])
    assert info.value.job.id == job["id"]


def test_progress_line_without_tqdm(
    live_api: LiveAPI,
    live_clock: LiveClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    job = live_api.add_job(**running(0.5, "lanczos"))
    live_api.script(job["id"], succeeded())
    live_client(live_api, live_clock).jobs.wait(job["id"], progress=True, long_poll=False)
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


def test_progress_with_tqdm(
    live_api: LiveAPI, live_clock: LiveClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tqdm")

    class Tty(io.StringIO):  # tqdm draws only on a terminal (test_sdk_progress.py)
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    job = live_api.add_job(**running(0.5, "lanczos"))
    live_api.script(job["id"], succeeded())
    live_client(live_api, live_clock).jobs.wait(job["id"], progress=True, long_poll=False)
    err = sys.stderr.getvalue()  # type: ignore[attr-defined]
    assert job["id"] in err
    assert "50%" in err
    assert "100%" in err


# -- cancel, list ------------------------------------------------------------------------


def test_cancel_queued_and_running(live_api: LiveAPI, live_clock: LiveClock) -> None:
    client = live_client(live_api, live_clock)
    queued = client.jobs.submit(VALID)
    assert queued.status == "queued"
    assert client.jobs.cancel(queued).status == "cancelled"
    started = live_api.add_job(**running(0.2))
    after = client.jobs.cancel(started["id"])
    assert after.status == "running"
    assert after.cancel_requested is True
    assert live_api.get(started["id"])["cancel_requested"] is True  # stored for the worker


def test_list_follows_cursors_newest_first(live_api: LiveAPI, live_clock: LiveClock) -> None:
    ids = [live_api.add_job()["id"] for _ in range(5)]
    live_api.add_job(tenant="tenant-b")  # another tenant's job is never listed
    client = live_client(live_api, live_clock)
    listed = [job.id for job in client.jobs.list(limit=2)]
    assert listed == list(reversed(ids))
    cursors = [c.query.get("cursor") for c in live_api.calls("GET", "/v1/jobs")]
    assert cursors[0] is None and len(cursors) == 3
    assert all(c is not None for c in cursors[1:]) and cursors[1] != cursors[2]
    page = client.jobs.list_page(limit=2)
    assert [j.id for j in page.items] == list(reversed(ids))[:2]
    assert page.has_more and page.next_cursor == cursors[1][0]  # type: ignore[index]
    last = client.jobs.list_page(limit=2, cursor=cursors[2][0])  # type: ignore[index]
    assert last.next_cursor is None
    assert [j.id for j in last.items] == [ids[0]]


def test_list_filters(live_api: LiveAPI, live_clock: LiveClock) -> None:
    live_api.add_job(metadata={"run": "a"})
    wanted = live_api.add_job(kind="hessian_spectrum", metadata={"run": "a", "commit": "x"})
    live_api.add_job(kind="hessian_spectrum", metadata={"run": "a"}, **failed())
    live_api.add_job(kind="hessian_spectrum", metadata={"run": "b"})
    client = live_client(live_api, live_clock)
    found = list(client.jobs.list(status="queued", kind="hessian_spectrum", metadata={"run": "a"}))
    assert [j.id for j in found] == [wanted["id"]]
    query = live_api.calls("GET", "/v1/jobs")[-1].query
    assert query == {"status": ["queued"], "kind": ["hessian_spectrum"], "metadata.run": ["a"]}


def test_list_stops_on_a_repeated_cursor(fake_api: Any, clock: Any) -> None:
    """A server bug (the same cursor twice) needs an injected answer: the fake API."""
    page = {"items": [], "next_cursor": "same"}
    fake_api.inject("GET", "/v1/jobs", 200, page, times=2, content_type="application/json")
    with pytest.raises(landscope.InvalidResponseError, match="same cursor"):
        list(fk.make_client(fake_api, clock).jobs.list())


# -- artifacts and blobs -----------------------------------------------------------------


def _job_with_artifacts(live_api: LiveAPI) -> dict[str, Any]:
    files = {
        "density.png": (b"\x89PNG fake", "image/png"),
        "eigs.json": (b"[1, 2]", "application/json"),
    }
    job = live_api.add_job(**succeeded(artifacts=files))
    assert [a["sha256"] for a in job["artifacts"]] == [
        hashlib.sha256(b).hexdigest() for b, _ in files.values()
    ]
    return job


def test_artifact_bytes_and_download(live_api: LiveAPI, live_clock: LiveClock,
                                     tmp_path: Path) -> None:
    job = _job_with_artifacts(live_api)
    client = live_client(live_api, live_clock)
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


def test_download_refuses_unsafe_artifact_names(live_api: LiveAPI, live_clock: LiveClock,
                                                 tmp_path: Path) -> None:
    art = {"name": "../evil", "media_type": "text/plain", "size": 1, "sha256": ""}
    job = live_api.add_job(**succeeded(listed=[art]))
    with pytest.raises(landscope.InvalidResponseError, match="unsafe name"):
        live_client(live_api, live_clock).jobs.download_artifacts(job["id"], tmp_path / "d")
    assert not (tmp_path / "evil").exists()
    assert live_api.calls("GET", f"/v1/jobs/{job['id']}/artifacts/../evil") == []


def test_blob_upload_is_content_addressed(live_api: LiveAPI, live_clock: LiveClock,
                                          tmp_path: Path) -> None:
    client = live_client(live_api, live_clock)
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
    assert live_api.calls("POST")[0].headers["content-type"] == "application/octet-stream"
    assert live_api.calls("POST")[0].body == data


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
