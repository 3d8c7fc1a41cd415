"""SDK ``jobs.wait`` when the service refuses its long poll (429 ``too_many_waits``): the
wait goes on with plain polls and backoff instead of raising. Against the real app served
in-process (``liveapi``) with a per-tenant cap of one concurrent wait; the slot is taken
through the service's own :class:`~landscope_service.jobs.limits.WaitSlots` in the same
Redis, so the refusal is the real one."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from liveapi import TENANT, LiveAPI, LiveClock, live_client, running, succeeded

from landscope import RateLimitError


@pytest.fixture()
def app(settings: Any, redis_client: Any) -> Any:
    from landscope_service.api import create_app

    return create_app({"TESTING": True},
                      settings=dataclasses.replace(settings, max_waits_per_tenant=1))


def test_wait_falls_back_to_plain_polls_when_every_wait_slot_is_taken(
    live_api: LiveAPI, live_clock: LiveClock
) -> None:
    job = live_api.add_job()
    live_api.script(job["id"], running(0.5), succeeded())
    with live_api.services.wait_slots.hold(TENANT, 60.0):  # the tenant's only slot
        done = live_client(live_api, live_clock).jobs.wait(
            job["id"], poll_interval=1.0, max_poll_interval=10.0)
    assert done.status == "succeeded"
    polls = live_api.calls("GET", f"/v1/jobs/{job['id']}")
    # one long poll (refused, not retried), then plain polls only
    assert [c.query.get("wait") for c in polls] == [["1.000"], None, None, None]
    # the refused poll is followed at once by a plain one; then the interval grows
    assert live_clock.sleeps == [1.0, 1.5]


def test_the_refusal_is_a_real_429_too_many_waits(
    live_api: LiveAPI, live_clock: LiveClock
) -> None:
    """The premise of the test above: the same long poll, sent by itself, is refused."""
    job = live_api.add_job()
    client = live_client(live_api, live_clock, max_retries=0)
    with live_api.services.wait_slots.hold(TENANT, 60.0), \
            pytest.raises(RateLimitError) as err:
        client.jobs._get(job["id"], wait=1.0)
    assert err.value.status == 429 and err.value.code == "too_many_waits"
    assert live_clock.sleeps == []


def test_with_a_free_slot_the_wait_stays_a_long_poll(
    live_api: LiveAPI, live_clock: LiveClock
) -> None:
    job = live_api.add_job(**succeeded())
    done = live_client(live_api, live_clock).jobs.wait(job["id"], poll_interval=2.0,
                                                       max_poll_interval=2.0)
    assert done.status == "succeeded"
    assert [c.query.get("wait") for c in live_api.calls("GET")] == [["2.000"]]
