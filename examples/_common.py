"""What every quickstart section does first: submit, wait with a progress bar, report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import landscope


def submit_and_wait(client: landscope.Client, request: dict[str, Any]) -> Any:
    """Submit ``request``, print a header, wait with a progress bar.

    Returns:
        The finished job, or None (after saying why) when it did not succeed.
    """
    job = client.jobs.submit(request)
    print(f"\n== {request['kind']} ({job.id})")
    done = client.jobs.wait(job.id, progress=True)
    if done.status != "succeeded" or done.result is None:
        print(f"  job {done.status}: {done.error}")
        return None
    return done
