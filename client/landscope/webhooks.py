"""Verify the service's webhooks (Standard Webhooks signatures).

Example:
    >>> from landscope import webhooks
    >>> secret = client.webhooks.secret()  # "whsec_..."  # doctest: +SKIP
    >>> event = webhooks.verify(request.body, request.headers, secret)  # doctest: +SKIP
    >>> event["type"], event["data"]["status"]  # doctest: +SKIP
    ('job.succeeded', 'succeeded')

The service signs ``"<webhook-id>.<webhook-timestamp>.<body>"`` with HMAC-SHA256 under
the tenant's secret and sends ``webhook-signature: v1,<base64>`` (several space-separated
entries after a secret rotation). :func:`verify` checks the timestamp against
``tolerance`` seconds (replays of old deliveries fail), compares in constant time, and
returns the parsed payload. Deduplicate deliveries by ``webhook-id``: a retry of one event
carries the same id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from landscope._exceptions import LandscopeError

__all__ = ["WebhookVerificationError", "sign", "verify"]

_PREFIX = "whsec_"


class WebhookVerificationError(LandscopeError):
    """The payload is unsigned, stale, or its signature does not match."""


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    raw = secret[len(_PREFIX):] if secret.startswith(_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError(
            "The secret is not a whsec_<base64> key (read it with client.webhooks.secret()).")\
            from None


def sign(msg_id: str, timestamp: int, payload: bytes, secret: str | bytes) -> str:
    """The ``v1,<base64>`` signature of one payload (what the service sends)."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + payload, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def _header(headers: Mapping[str, str], name: str) -> str:
    for k, v in headers.items():
        if k.lower() == name:
            return v
    raise WebhookVerificationError(f"Missing the {name} header: the request is not signed.")


def verify(payload: bytes | str, headers: Mapping[str, str], secret: str | bytes,
           tolerance: float = 300, *, now: float | None = None) -> dict[str, Any]:
    """Check a webhook and return its JSON payload.

    Args:
        payload: the raw request body, exactly as received.
        headers: the request headers (any case).
        secret: the tenant's ``whsec_...`` secret.
        tolerance: largest accepted distance, in seconds, between ``webhook-timestamp``
            and ``now``.
        now: UNIX seconds to check against (default: the current time).

    Raises:
        WebhookVerificationError: a header is missing, the timestamp is outside the
            tolerance, or no signature matches.
    """
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    msg_id = _header(headers, "webhook-id")
    raw_ts = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        ts = int(raw_ts)
    except ValueError:
        raise WebhookVerificationError(f"Bad webhook-timestamp {raw_ts!r}.") from None
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        raise WebhookVerificationError(
            f"The webhook timestamp is {current - ts:.0f} s away from now (tolerance "
            f"{tolerance:g} s): a stale or replayed delivery, or a wrong clock.")
    expected = sign(msg_id, ts, body, secret).encode()
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected):
            try:
                out = json.loads(body)
            except ValueError:
                raise WebhookVerificationError("The signed payload is not JSON.") from None
            if not isinstance(out, dict):
                raise WebhookVerificationError("The signed payload is not a JSON object.")
            return out
    raise WebhookVerificationError("No webhook signature matches: the payload was altered, "
                                   "or it was signed with another secret.")
