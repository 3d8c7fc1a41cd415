"""Webhooks: URL checks (SSRF), Standard Webhooks signing, per-tenant secrets, deliveries.

Signing follows Standard Webhooks (https://www.standardwebhooks.com): each request carries
``webhook-id`` (the same on every retry of one event), ``webhook-timestamp`` (UNIX seconds
of this attempt) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``,
one entry per valid secret, separated by spaces (after a rotation the previous secret stays
valid for a grace period, so receivers can roll over).

Keys:
    ls:whsecret:<tenant>            hash: current, previous, previous_until (UNIX s)
    ls:whdelivery:<id>              hash: job_id, tenant, url, type, body, created_at,
                                    status (pending|delivered|failed), attempts (JSON list)
    ls:job:<id>:deliveries          list of delivery ids, oldest first
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis

__all__ = [
    "EVENT_NAMES",
    "Deliveries",
    "WebhookSecrets",
    "blocked_address",
    "check_webhook_url",
    "decode_secret",
    "sign",
]

EVENT_NAMES = ("started", "progress", "succeeded", "failed", "cancelled", "expired")
DEFAULT_EVENTS = ("started", "succeeded", "failed", "cancelled", "expired")  # not progress
SECRET_PREFIX = "whsec_"

# Cloud metadata services that do not sit in a private or link-local range.
_METADATA = {ipaddress.ip_address("100.100.100.200"),  # Alibaba
             ipaddress.ip_address("fd00:ec2::254")}      # AWS IPv6 (also private)


def blocked_address(addr: str) -> str | None:
    """Why a resolved address may not receive webhooks (None: it may)."""
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return "a reserved address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a shared (carrier-grade NAT) address"
    return None


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def check_webhook_url(url: str, *, allow_private: bool,
                      resolve: Callable[[str, int], list[str]] = _resolve) -> str | None:
    """A message saying why ``url`` cannot receive webhooks, or None when it can.

    https only, unless ``allow_private`` (LANDSCOPE_WEBHOOK_ALLOW_PRIVATE) also allows http.
    Every address the host resolves to must be public unless ``allow_private``: loopback,
    private, link-local (cloud metadata), shared and reserved ranges are refused, so a
    webhook cannot reach inside the service's network.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        return f"Not a valid URL ({e})."
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        return ("The webhook must be an https:// URL"
                + ("." if allow_private else
                   " (plain http only with LANDSCOPE_WEBHOOK_ALLOW_PRIVATE=true)."))
    if not parts.hostname:
        return "The webhook URL has no host."
    if parts.username or parts.password:
        return "The webhook URL must not carry credentials; verify the signature instead."
    if allow_private:
        return None
    try:
        addrs = _resolve_any(parts.hostname, port or (443 if parts.scheme == "https" else 80),
                             resolve)
    except OSError:
        return f"The webhook host {parts.hostname!r} does not resolve."
    for addr in addrs:
        why = blocked_address(addr)
        if why is not None:
            return (f"The webhook host {parts.hostname!r} resolves to {addr}, {why}; webhooks "
                    "go to public addresses only (LANDSCOPE_WEBHOOK_ALLOW_PRIVATE=true allows "
                    "private ones, for local use).")
    return None


def _resolve_any(host: str, port: int, resolve: Callable[[str, int], list[str]]) -> list[str]:
    try:  # a literal address needs no lookup
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        return resolve(host, port)


# ---------------------------------------------------------------- signing
def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret."""
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(raw)


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` (Standard Webhooks)."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


@dataclass
class WebhookSecrets:
    """One signing secret per tenant, made on first use; rotation keeps the previous one
    valid for ``grace_s`` seconds."""

    client: redis.Redis
    grace_s: float = 24 * 3600.0
    clock: Callable[[], float] = time.time

    @staticmethod
    def _key(tenant: str) -> str:
        return f"ls:whsecret:{tenant}"

    @staticmethod
    def _new() -> str:
        return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()

    def current(self, tenant: str) -> str:
        key = self._key(tenant)
        self.client.hsetnx(key, "current", self._new())
        return self.client.hget(key, "current").decode()  # type: ignore[union-attr]

    def rotate(self, tenant: str) -> dict[str, Any]:
        """A new current secret; the old one stays valid until ``previous_valid_until``."""
        old = self.current(tenant)
        new = self._new()
        until = self.clock() + self.grace_s
        self.client.hset(self._key(tenant), mapping={
            "current": new, "previous": old, "previous_until": until})
        return {"secret": new, "previous_valid_until": until}

    def valid(self, tenant: str) -> list[str]:
        """The secrets a delivery is signed with now: the current one, then the previous
        one while its grace period lasts."""
        current = self.current(tenant)
        raw = self.client.hmget(self._key(tenant), ["previous", "previous_until"])
        prev, until = raw  # type: ignore[misc]
        out = [current]
        if prev and until and float(until) > self.clock():
            out.append(prev.decode())  # type: ignore[union-attr]
        return out

    def signature_header(self, tenant: str, msg_id: str, timestamp: int, body: bytes) -> str:
        return " ".join(sign(decode_secret(s), msg_id, timestamp, body)
                        for s in self.valid(tenant))


# ---------------------------------------------------------------- deliveries
@dataclass
class Deliveries:
    """The delivery log: one record per event sent to a job's webhook, with its attempts."""

    client: redis.Redis
    ttl_s: int = 7 * 24 * 3600

    @staticmethod
    def _key(delivery_id: str) -> str:
        return f"ls:whdelivery:{delivery_id}"

    @staticmethod
    def _job_key(job_id: str) -> str:
        return f"ls:job:{job_id}:deliveries"

    def create(self, *, job_id: str, tenant: str, url: str, event_type: str,
               body: bytes) -> str:
        delivery_id = "msg_" + secrets.token_hex(12)
        pipe = self.client.pipeline()
        pipe.hset(self._key(delivery_id), mapping={
            "id": delivery_id, "job_id": job_id, "tenant": tenant, "url": url,
            "type": event_type, "body": body, "created_at": time.time(),
            "status": "pending", "attempts": "[]"})
        pipe.expire(self._key(delivery_id), self.ttl_s)
        pipe.rpush(self._job_key(job_id), delivery_id)
        pipe.expire(self._job_key(job_id), self.ttl_s)
        pipe.execute()
        return delivery_id

    def get(self, delivery_id: str) -> dict[str, Any] | None:
        raw = self.client.hgetall(self._key(delivery_id))
        if not raw:
            return None
        rec = {k.decode(): v for k, v in raw.items()}  # type: ignore[union-attr]
        out: dict[str, Any] = {k: v.decode() for k, v in rec.items()  # type: ignore[union-attr]
                               if k != "body"}
        out["body"] = rec["body"]
        out["created_at"] = float(out["created_at"])
        out["attempts"] = json.loads(out["attempts"])
        return out

    def record_attempt(self, delivery_id: str, attempt: dict[str, Any], status: str) -> None:
        rec = self.get(delivery_id)
        if rec is None:
            return
        attempts = [*rec["attempts"], attempt]
        self.client.hset(self._key(delivery_id), mapping={
            "attempts": json.dumps(attempts), "status": status})

    def for_job(self, job_id: str) -> list[dict[str, Any]]:
        """The job's deliveries, oldest first, as the API shows them (no body)."""
        ids = self.client.lrange(self._job_key(job_id), 0, -1)
        out = []
        for member in ids:  # type: ignore[union-attr]
            rec = self.get(member.decode())  # type: ignore[union-attr]
            if rec is None:
                continue
            rec.pop("body")
            rec.pop("tenant")
            out.append(rec)
        return out
