"""A request body must arrive within ``LANDSCOPE_BODY_TIMEOUT_S`` of the headers.

Against slow-body clients (slowloris: announce a body, send a byte now and then): the
WSGI input is wrapped so that every read has the time left until the deadline, and a
read past it raises a 408 ``request_timeout``. Under gunicorn's gevent workers (the
default of ``landscope-service api``) the deadline bounds the whole body, however the
bytes trickle in; under threaded servers it bounds each wait for bytes on the socket,
so a client must send at least one byte per ``LANDSCOPE_BODY_TIMEOUT_S``. After the
408, gunicorn closes the connection within its keep-alive time (it stops reading the
rest of the body then).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from werkzeug.exceptions import RequestTimeout

__all__ = ["BodyDeadline", "BodyTimeout"]


class BodyTimeout(RequestTimeout):
    """408: the body did not arrive in time."""


def _gevent_active() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("socket"))


class _DeadlineInput:
    """``wsgi.input`` whose reads end at a deadline."""

    def __init__(self, stream: Any, deadline: float, timeout_s: float, sock: Any) -> None:
        self._stream = stream
        self._deadline = deadline
        self._timeout_s = timeout_s
        self._sock = sock
        self._gevent = _gevent_active()

    def _expired(self) -> BodyTimeout:
        return BodyTimeout(
            f"The request body did not arrive within {self._timeout_s:g} s "
            "(LANDSCOPE_BODY_TIMEOUT_S); send the whole body at once.")

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise self._expired()
        if self._gevent:
            import gevent

            timer = gevent.Timeout(remaining)
            timer.start()
            try:
                return fn(*args)
            except gevent.Timeout as t:
                if t is not timer:
                    raise
                raise self._expired() from None
            finally:
                timer.close()
        if self._sock is not None:
            try:
                self._sock.settimeout(remaining)
            except OSError:
                pass
        try:
            return fn(*args)
        except TimeoutError:
            raise self._expired() from None

    def read(self, *args: Any) -> bytes:
        return self._call(self._stream.read, *args)  # type: ignore[no-any-return]

    def readinto(self, buf: bytearray) -> int:
        inner = getattr(self._stream, "readinto", None)
        if inner is not None:
            return self._call(inner, buf)  # type: ignore[no-any-return]
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def readline(self, *args: Any) -> bytes:
        return self._call(self._stream.readline, *args)  # type: ignore[no-any-return]

    def readlines(self, *args: Any) -> list[bytes]:
        return self._call(self._stream.readlines, *args)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class BodyDeadline:
    """WSGI middleware: wraps ``wsgi.input`` of requests that carry a body."""

    def __init__(self, app: Callable[..., Iterable[bytes]], timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) \
            -> Iterable[bytes]:
        has_body = environ.get("CONTENT_LENGTH") not in (None, "", "0") or \
            "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if has_body and "wsgi.input" in environ:
            environ["wsgi.input"] = _DeadlineInput(
                environ["wsgi.input"], time.monotonic() + self.timeout_s, self.timeout_s,
                environ.get("gunicorn.socket"))
        return self.app(environ, start_response)
