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
