"""The :class:`Client`: configuration and the resources ``blobs`` and ``jobs``."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests

from landscope._blobs import Blobs
from landscope._events import Webhooks
from landscope._exceptions import LandscopeError
from landscope._http import RetryPolicy, Transport
from landscope._jobs import Jobs

__all__ = ["Client"]

URL_ENV = "LANDSCOPE_URL"
API_KEY_ENV = "LANDSCOPE_API_KEY"


class Client:
    """A connection to a landscope service.

    Example:
        >>> client = Client("http://127.0.0.1:8000", api_key="...")  # doctest: +SKIP
        >>> job = client.jobs.submit(request)  # doctest: +SKIP
        >>> result = client.jobs.result(job, progress=True)  # doctest: +SKIP

    Args:
        base_url: the service root, e.g. ``http://127.0.0.1:8000``; defaults to the
            ``LANDSCOPE_URL`` environment variable.
        api_key: the bearer key; defaults to ``LANDSCOPE_API_KEY``.
        timeout: seconds to wait for each HTTP answer.
        max_retries: retries of a failed request (see :class:`RetryPolicy`).
        retry: a full retry policy; overrides ``max_retries``.
        session: a ``requests.Session`` to send with (proxies, certificates, adapters);
            the client closes only a session it made itself.
        sleep: the sleep function (for tests; ``time.sleep`` by default).
        clock: the monotonic clock of ``wait`` deadlines (``time.monotonic``).
        rng: the random source of retry jitter.

    Attributes:
        blobs: upload and inspect files (:class:`~landscope._blobs.Blobs`).
        jobs: submit, wait for and inspect jobs (:class:`~landscope._jobs.Jobs`).
        webhooks: the webhook secret and deliveries (:class:`~landscope._events.Webhooks`).

    Raises:
        LandscopeError: no URL or no key was given or set in the environment, or the
            URL is not http(s).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        url = base_url if base_url is not None else os.environ.get(URL_ENV, "")
        if not url:
            raise LandscopeError(
                f"No service URL: pass base_url=... or set {URL_ENV} (e.g. http://127.0.0.1:8000)."
            )
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
        if not key:
            raise LandscopeError(f"No API key: pass api_key=... or set {API_KEY_ENV}.")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise LandscopeError(f"The service URL must be http(s)://host[:port], got {url!r}.")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}.")
        url = url.rstrip("/")
        url = url.removesuffix("/v1")
        self.base_url = url
        self.timeout = timeout
        policy = retry if retry is not None else RetryPolicy(max_retries=max_retries)
        self._transport = Transport(
            url, key, timeout=timeout, retry=policy, session=session, sleep=sleep, rng=rng
        )
        self.blobs = Blobs(self._transport)
        self.jobs = Jobs(self._transport, sleep=sleep, clock=clock, blobs=self.blobs)
        self.webhooks = Webhooks(self._transport)

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: whether the API process answers.

        Returns:
            ``{"status": "ok"}``.
        """
        body: Any = self._transport.get_json("/healthz")
        return dict(body) if isinstance(body, dict) else {"status": body}

    def close(self) -> None:
        """Release the connection pool."""
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"
