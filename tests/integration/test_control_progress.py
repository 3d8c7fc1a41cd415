"""Progress never goes backwards, through the real stack: a hessian_spectrum job whose
probes are fanned-out pieces (run by the job's own worker process here), polled as it
runs. Issue 11 saw 77% -> 58% -> 65% in this stage."""

from __future__ import annotations

import itertools

import pytest

import landscope

from support import evaluate_request

pytestmark = pytest.mark.integration


def test_progress_is_monotone_through_fanned_out_probes(client_a: landscope.Client) -> None:
    req = evaluate_request(num_samples=64)
    req.update(kind="hessian_spectrum", seed=3,
               options={"mode": "iterative", "top_k": 2, "bottom_k": 1,
                        "density_probes": 6, "density_steps": 40})
    job = client_a.jobs.submit(req)
    seen: list[tuple[str, float]] = []
    while True:  # every state the API shows, as fast as it answers
        cur = client_a.jobs.get(job.id)
        seen.append((cur.progress.stage, cur.progress.fraction))
        if cur.is_finished:
            break
    assert cur.status == "succeeded", cur.error
    fractions = [f for _, f in seen]
    drops = [(a, b) for a, b in itertools.pairwise(seen) if b[1] < a[1]]
    assert drops == [], drops
    assert fractions[-1] == 1.0
    # the job was watched while it ran, not only at its end
    assert len({f for f in fractions if 0.0 < f < 1.0}) >= 2


def test_estimates_switch_to_the_rates_this_pool_measured(client_a: landscope.Client) -> None:
    import time

    req = evaluate_request(num_samples=64)
    req.update(kind="hessian_spectrum", seed=4,
               options={"mode": "iterative", "top_k": 1, "bottom_k": 1,
                        "density_probes": 2, "density_steps": 10})
    first = client_a.jobs.submit(req)
    assert client_a.jobs.wait(first.id, timeout=120).status == "succeeded"
    # the worker recorded its seconds per product; its heartbeat carries them and the API
    # re-reads heartbeats every 10 s: poll submissions for that event (bounded)
    deadline = time.monotonic() + 90
    while True:
        probe = client_a.jobs.submit(evaluate_request(num_samples=8, seed=int(time.time())))
        est = dict(probe.estimate or {})
        if str(est["rates"]["source"]).startswith("measured"):
            break
        assert time.monotonic() < deadline, est["rates"]
        time.sleep(1.0)
    lo, mid, hi = est["rates"]["per_unit_s"]
    assert 0 < lo <= mid <= hi
    assert est["seconds"]["low"] <= est["seconds"]["typical"] <= est["seconds"]["high"]
