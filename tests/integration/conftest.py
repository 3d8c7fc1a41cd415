"""The real stack for integration tests: a private Redis, the API under gunicorn, and a
Celery worker process, all started here and stopped at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import landscope
from landscope_service.local import LocalStack

pytestmark = pytest.mark.integration

KEYS = "tenant-a:key-a,tenant-b:key-b"


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    st = LocalStack(api_keys=KEYS, workers=1, concurrency=1, api_workers=2,
                    # A long lease: a loaded CI machine never lets a live run's lease lapse
                    # (a lapse re-runs the job). Tests of a dead worker expire the lease
                    # themselves (support.expire_lease) instead of waiting for it.
                    env={"LANDSCOPE_LEASE_S": "30", "LANDSCOPE_MAX_ATTEMPTS": "3",
                         "LANDSCOPE_LOG_LEVEL": "INFO",
                         "LANDSCOPE_TEST_KINDS": "1"})  # test_block (support.block_request)
    try:
        st.start(timeout=120)
    except BaseException:
        print(st.logs())
        st.stop()
        raise
    yield st
    st.stop()


@pytest.fixture()
def client_a(stack: LocalStack) -> Iterator[landscope.Client]:
    with landscope.Client(stack.url, api_key="key-a", timeout=30, max_retries=2) as c:
        yield c


@pytest.fixture()
def client_b(stack: LocalStack) -> Iterator[landscope.Client]:
    with landscope.Client(stack.url, api_key="key-b", timeout=30, max_retries=2) as c:
        yield c
