"""HTTP transport: authentication, retries with backoff, error mapping.

One :class:`Transport` per :class:`~landscope.Client`; it holds no global state, and its
clock, sleep and random source are injectable so that tests can run retries in no time.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import IO, Any
from urllib.parse import quote

import requests

from landscope._exceptions import (
    APIConnectionError,
    APITimeoutError,
    InvalidResponseError,
    api_error_from_response,
)
from landscope._version import __version__

__all__ = ["RetryPolicy", "Transport", "parse_retry_after", "path_segment"]

logger = logging.getLogger("landscope")

RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses retried whatever their body (plus any other 5xx)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried.

    A request is retried after a connection error, a timeout, or a 408, 429, 5xx, or
    a 409 whose code is ``idempotency_in_progress``; never after another 4xx. The
    delay before retry ``n`` (from 0) is the answer's ``Retry-After`` when it has one
    (capped at ``max_retry_after``), else "full jitter" exponential backoff:
    ``uniform(0, min(max_delay, initial_delay * 2**n))``.

    Attributes:
        max_retries: retries after the first attempt (0 disables retrying).
        initial_delay: backoff scale in seconds.
        max_delay: cap of the backoff in seconds.
        max_retry_after: cap on a server's ``Retry-After`` in seconds.
    """

    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}.")
        if self.initial_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("Retry delays must be >= 0.")

    def backoff(self, retry: int, unit_random: float) -> float:
        """The backoff delay before retry number ``retry`` (0-based).

        Args:
            retry: how many retries came before this one.
            unit_random: a number in [0, 1) (the jitter).

        Returns:
            Seconds to sleep.
        """
        ceiling = min(self.max_delay, self.initial_delay * (2.0**retry))
        return unit_random * ceiling


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Read a ``Retry-After`` header: delay seconds or an HTTP date.

    Args:
        value: the header value.
        now: the current time (for HTTP dates); defaults to the system clock.

    Returns:
        Seconds to wait (never negative), or ``None`` if absent or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def path_segment(value: str) -> str:
    """Percent-encode one URL path segment (ids, artifact names)."""
    return quote(value, safe=":@")


class Transport:
    """Sends requests to the API, retrying what is safe to retry.

    Every request the SDK sends is safe to repeat: GETs, the idempotent cancel,
    content-addressed blob uploads, and job submissions (which carry one
    ``Idempotency-Key`` for all their attempts).

    Args:
        base_url: e.g. ``http://127.0.0.1:8000``.
        api_key: the bearer token.
        timeout: seconds to wait for the server on each attempt.
        retry: the retry policy.
        session: a ``requests.Session`` to use (one is made otherwise).
        sleep: the sleep function (``time.sleep``).
        rng: source of the jitter (``random.Random()``).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        retry: RetryPolicy,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.retry = retry
        self._owns_session = session is None
        self.session = session if session is not None else requests.Session()
        self._sleep = sleep if sleep is not None else time.sleep
        self._rng = rng if rng is not None else random.Random()
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": f"landscope-python/{__version__}",
        }

    def close(self) -> None:
        """Close the session if this transport made it."""
        if self._owns_session:
            self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        content: bytes | IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        no_retry_codes: Collection[str] = (),
    ) -> requests.Response:
        """Send a request and return a successful (< 400) answer.

        Args:
            method: ``GET`` or ``POST``.
            path: the path after the base URL, starting with ``/``.
            params: query parameters.
            json: a JSON body.
            content: a raw body: bytes, or a binary file (rewound before each attempt).
            headers: extra headers.
            stream: leave the body unread (for downloads).
            no_retry_codes: error codes raised at once, never retried (the caller has a
                better answer to them than the same request again).

        Returns:
            The answer.

        Raises:
            APIError: an error status (a subclass per status), after any retries.
            APITimeoutError: the last attempt timed out.
            APIConnectionError: the last attempt got no answer.
        """
        url = self.base_url + path
        merged = dict(self._headers)
        if headers:
            merged.update(headers)
        start = content.tell() if content is not None and not isinstance(content, bytes) else 0
        retries = 0
        while True:
            if content is not None and not isinstance(content, bytes):
                content.seek(start)
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=content,
                    headers=merged,
                    timeout=self.timeout,
                    stream=stream,
                )
            except requests.Timeout as e:
                if retries < self.retry.max_retries:
                    self._pause(retries, None, f"{method} {path} timed out")
                    retries += 1
                    continue
                raise APITimeoutError(
                    f"{method} {url} timed out after {self.timeout:g} s ({retries + 1} attempt(s))."
                ) from e
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as e:
                if retries < self.retry.max_retries:
                    self._pause(retries, None, f"{method} {path} failed to connect: {e}")
                    retries += 1
                    continue
                raise APIConnectionError(
                    f"Could not reach {self.base_url} ({method} {path}, {retries + 1} "
                    f"attempt(s)): {e}"
                ) from e
            except requests.RequestException as e:
                raise APIConnectionError(f"{method} {url} failed: {e}") from e

            if response.status_code < 400:
                return response
            error = api_error_from_response(response)
            response.close()
            retryable = error.code not in no_retry_codes and (
                error.status in RETRYABLE_STATUSES
                or error.status >= 500
                or (error.status == 409 and error.code == "idempotency_in_progress")
            )
            if retryable and retries < self.retry.max_retries:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                self._pause(retries, retry_after, f"{method} {path} answered {error.status}")
                retries += 1
                continue
            raise error

    def _pause(self, retries: int, retry_after: float | None, why: str) -> None:
        if retry_after is not None:
            delay = min(retry_after, self.retry.max_retry_after)
        else:
            delay = self.retry.backoff(retries, self._rng.random())
        logger.info("%s; retry %d/%d in %.2f s", why, retries + 1, self.retry.max_retries, delay)
        self._sleep(delay)

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        """``GET`` a JSON document."""
        return self.json_of(self.request("GET", path, params=params))

    @staticmethod
    def json_of(response: requests.Response) -> Any:
        """The JSON body of an answer.

        Raises:
            InvalidResponseError: the body is not JSON.
        """
        try:
            return response.json()
        except ValueError as e:
            raise InvalidResponseError(
                f"Expected JSON from {response.request.method} {response.url}, got "
                f"{response.headers.get('Content-Type', 'no content type')}: "
                f"{response.text[:200]!r}",
                response,
            ) from e
