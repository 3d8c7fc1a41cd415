"""The fan-out protocol over a real Redis, without Celery processes: helpers run in this
process (a stand-in for `celery.group(...).apply_async()`), the parent is the job's run."""

from __future__ import annotations

from typing import Any

import pytest

from landscope_service.diagnostics import LocalExecutor, Monitor, RunContext
from landscope_service.diagnostics.hessian.runner import run_hessian_spectrum
from landscope_service.jobs.store import JobStore
from landscope_service.storage.blobs import BlobService
from landscope_service.storage.store import LocalStore
from landscope_service.worker import fanout
from landscope_service.worker.problem_factory import build_for_request
from landscope_service.worker.runtime import JobRuntime

from support import AUTH_A, evaluate_request

OPTIONS = {"mode": "iterative", "top_k": 2, "bottom_k": 1, "density_probes": 6,
           "density_steps": 12, "ggn_split": False}


def _runtime(settings: Any, redis_client: Any, name: str) -> JobRuntime:
    store = LocalStore(settings.data_dir)
    return JobRuntime(settings=settings, jobs=JobStore(redis_client, lease_s=settings.lease_s),
                      blobs=BlobService(redis_client, store), store=store, hostname=name)


class _App:
    """Records the helper tasks the executor asks for."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[Any, ...], str]] = []

    def signature(self, name: str, args: tuple[Any, ...], queue: str) -> tuple[Any, ...]:
        return (name, args, queue)


@pytest.fixture()
def running_job(http: Any, settings: Any, redis_client: Any) -> tuple[str, JobRuntime]:
    req = {**evaluate_request(num_samples=40), "kind": "hessian_spectrum", "options": OPTIONS}
    job = http.post("/v1/jobs", json=req, headers=AUTH_A).get_json()
    parent = _runtime(settings, redis_client, "parent@host")
    assert parent.jobs.start(job["id"], worker="parent@host", max_attempts=3)[0] == "started"
    return job["id"], parent


def _problem_and_options(rt: JobRuntime, job_id: str) -> tuple[Any, dict[str, Any]]:
    doc = rt.jobs.doc(job_id)
    assert doc is not None
    return build_for_request(rt, doc["tenant"], doc["request"])[0], doc["request"]["options"]


def test_helpers_compute_pieces_and_results_match_local(
    running_job: tuple[str, JobRuntime], settings: Any, redis_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id, parent = running_job
    helper = _runtime(settings, redis_client, "helper@other-host")
    calls: list[tuple[Any, ...]] = []

    class _Group:
        def __init__(self, sigs: Any) -> None:
            self.sigs = list(sigs)

        def apply_async(self) -> None:  # the helper runs at once, before the parent loop
            for name, args, queue in self.sigs[:1]:
                calls.append((name, queue))
                fanout.help_with_pieces(helper, *args)

    import celery

    monkeypatch.setattr(celery, "group", _Group)
    problem, options = _problem_and_options(parent, job_id)
    ex = fanout.FanoutExecutor(_App(), parent, job_id, "cpu", width=4)  # type: ignore[arg-type]
    fanned = run_hessian_spectrum(problem, options, RunContext(executor=ex, seed=0))
    local = run_hessian_spectrum(problem, options, RunContext(executor=LocalExecutor(), seed=0))
    assert calls == [("landscope.run_pieces", "cpu")]
    assert ex.pieces_by_worker == {"helper@other-host": 6}
    assert fanned.result["density"]["nodes"] == local.result["density"]["nodes"]
    assert fanned.result["trace"] == local.result["trace"]
    assert not list(redis_client.scan_iter(match=f"ls:fan:{job_id}:*:payloads"))


@pytest.mark.timeout(60)
def test_piece_of_a_dead_helper_is_run_again(
    running_job: tuple[str, JobRuntime], redis_client: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A helper claimed piece 0 and died: once its claim lapses the parent runs it."""
    job_id, parent = running_job

    class _Group:
        def __init__(self, sigs: Any) -> None:
            self.sigs = list(sigs)

        def apply_async(self) -> None:
            _, (jid, fid), _ = self.sigs[0]
            k = fanout._Keys(jid, fid)
            assert redis_client.lpop(k.todo) == b"0"
            redis_client.set(k.claim + "0", "dead@host", px=300)  # never renewed

    import celery

    monkeypatch.setattr(celery, "group", _Group)
    problem, _ = _problem_and_options(parent, job_id)
    ex = fanout.FanoutExecutor(_App(), parent, job_id, "cpu", width=1)  # type: ignore[arg-type]
    out = ex.map(fanout._resolve("landscope_service.diagnostics.hessian.runner:probe_piece"),
                 problem, [{"seed": s, "steps": 4, "hvp": "auto", "deflation": None,
                            "deflation_values": None, "groups": []} for s in range(3)],
                 Monitor())
    assert len(out) == 3 and ex.pieces_by_worker == {"parent@host": 3}


def test_only_core_functions_are_run() -> None:
    with pytest.raises(ValueError, match="numerical core"):
        fanout._resolve("os:system")
    with pytest.raises(ValueError, match="module-level"):
        fanout._fn_path(lambda p, d, m: {})


def test_pack_round_trip_never_pickles(monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import pickle
    import struct

    import torch
    from safetensors.torch import load

    class Refuse:  # stands in for pickle.Pickler, dump and dumps (torch.save subclasses it)
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("pack used pickle")

    for name in ("Pickler", "dump", "dumps"):
        monkeypatch.setattr(pickle, name, Refuse)
    data = fanout.pack({"theta": torch.arange(4.0), "seed": 3, "name": "x"})
    # every byte is accounted for: 8-byte length, the JSON fields, a safetensors file
    (n,) = struct.unpack("<Q", data[:8])
    assert json.loads(data[8 : 8 + n]) == {"seed": 3, "name": "x"}
    tensors = load(data[8 + n :])
    assert list(tensors) == ["theta"] and torch.equal(tensors["theta"], torch.arange(4.0))
    back = fanout.unpack(data)
    assert back["seed"] == 3 and back["name"] == "x"
    assert torch.equal(back["theta"], torch.arange(4.0))
