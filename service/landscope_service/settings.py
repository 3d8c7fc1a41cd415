"""Settings from ``LANDSCOPE_*`` environment variables, validated at start-up.

Every setting has a default that serves one machine. A wrong value stops the process
with a message naming the variable (:class:`SettingsError`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["Settings", "SettingsError", "load_settings"]


class SettingsError(ValueError):
    """A ``LANDSCOPE_*`` variable has a value that cannot work."""


def _int(lo: int, hi: int | None = None) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r}: expected an integer.") from None
        if value < lo or (hi is not None and value > hi):
            bound = f">= {lo}" if hi is None else f"between {lo} and {hi}"
            raise SettingsError(f"{name}={raw!r}: expected an integer {bound}.")
        return value

    return parse


def _float(lo: float) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r}: expected a number.") from None
        if not value >= lo:
            raise SettingsError(f"{name}={raw!r}: expected a number >= {lo}.")
        return value

    return parse


def _str(name: str, raw: str) -> str:
    return raw


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        if raw not in choices:
            raise SettingsError(f"{name}={raw!r}: expected one of {', '.join(choices)}.")
        return raw

    return parse


def _bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r}: expected true or false.")


def _redis_url(name: str, raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"{name}={raw!r}: expected a redis:// or rediss:// or unix:// URL.")
    return raw


def _keys(name: str, raw: str) -> dict[str, str]:
    """``tenant:key,tenant2:key2`` -> {key: tenant}."""
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in raw.split(","))):
        tenant, sep, key = item.partition(":")
        if not sep or not tenant or not key:
            raise SettingsError(f"{name}: entry {item!r} is not of the form tenant:key.")
        out[key] = tenant
    return out


def _tenant_seconds(name: str, raw: str) -> dict[str, int]:
    """``tenant:seconds,tenant2:seconds`` -> {tenant: seconds}."""
    out: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in raw.split(","))):
        tenant, sep, value = item.partition(":")
        if not sep or not tenant or not value.strip().isdigit() or int(value) < 1:
            raise SettingsError(f"{name}: entry {item!r} is not of the form tenant:seconds "
                                "(seconds a positive integer).")
        out[tenant.strip()] = int(value)
    return out


def _path(name: str, raw: str) -> Path:
    return Path(raw).expanduser()


def _optional_path(name: str, raw: str) -> Path | None:
    return Path(raw).expanduser() if raw else None


@dataclass(frozen=True)
class Settings:
    """All settings; the field's metadata gives the variable name and parser."""

    redis_url: str = field(default="redis://127.0.0.1:6379/0",
                           metadata={"env": "LANDSCOPE_REDIS_URL", "parse": _redis_url,
                                     "doc": "Redis for the broker, job records and progress."})
    data_dir: Path = field(default=Path("./var"),
                           metadata={"env": "LANDSCOPE_DATA_DIR", "parse": _path,
                                     "doc": "Folder of the local blob and artifact store."})
    storage: str = field(default="local",
                         metadata={"env": "LANDSCOPE_STORAGE", "parse": _choice("local", "redis"),
                                   "doc": "Blob/artifact backend: local folder (one host) or "
                                          "redis (shared by hosts, size-capped)."})
    api_keys: dict[str, str] = field(default_factory=dict,
                                     metadata={"env": "LANDSCOPE_API_KEYS", "parse": _keys,
                                               "doc": "Development keys: tenant:key,..."})
    api_keys_file: Path | None = field(default=None,
                                       metadata={"env": "LANDSCOPE_API_KEYS_FILE",
                                                 "parse": _optional_path,
                                                 "doc": "File of tenant:sha256-of-key lines "
                                                        "(production)."})
    max_body_bytes: int = field(default=64 * 1024 * 1024,
                                metadata={"env": "LANDSCOPE_MAX_BODY_BYTES", "parse": _int(1024),
                                          "doc": "Largest request body; larger answers 413."})
    max_json_bytes: int = field(default=8 * 1024 * 1024,
                                metadata={"env": "LANDSCOPE_MAX_JSON_BYTES", "parse": _int(1024),
                                          "doc": "Largest JSON job request; larger answers 413."})
    max_json_depth: int = field(default=64,
                                metadata={"env": "LANDSCOPE_MAX_JSON_DEPTH", "parse": _int(4, 512),
                                          "doc": "Deepest nesting of arrays and objects in a "
                                                 "JSON body; deeper answers 400."})
    max_data_values: int = field(default=16_777_216,
                                 metadata={"env": "LANDSCOPE_MAX_DATA_VALUES", "parse": _int(1),
                                           "doc": "Numbers in one data set (x and y together), "
                                                  "checked from a file's headers before it is "
                                                  "decoded; more answers 422."})
    max_file_header_bytes: int = field(default=8 * 1024 * 1024,
                                       metadata={"env": "LANDSCOPE_MAX_FILE_HEADER_BYTES",
                                                 "parse": _int(1024),
                                                 "doc": "Largest safetensors JSON header and "
                                                        "zip central directory of an uploaded "
                                                        "file; larger answers 422."})
    blob_ttl_s: int = field(default=30 * 24 * 3600,
                            metadata={"env": "LANDSCOPE_BLOB_TTL_S", "parse": _int(60),
                                      "doc": "A blob unused (not uploaded again, not read by a "
                                             "job) for this long expires (expires_at)."})
    tenant_blob_bytes: int = field(default=10 * 1024**3,
                                   metadata={"env": "LANDSCOPE_TENANT_BLOB_BYTES",
                                             "parse": _int(0),
                                             "doc": "Bytes of blobs one tenant may store (429 "
                                                    "with Retry-After above; 0: no cap)."})
    max_blob_bytes: int = field(default=20 * 1024**3,
                                metadata={"env": "LANDSCOPE_MAX_BLOB_BYTES", "parse": _int(1024),
                                          "doc": "Largest blob a chunked upload (POST "
                                                 "/v1/uploads) may declare; larger answers 413."})
    upload_ttl_s: int = field(default=24 * 3600,
                              metadata={"env": "LANDSCOPE_UPLOAD_TTL_S", "parse": _int(60),
                                        "doc": "A chunked upload that receives no part for "
                                               "this long expires and its parts are removed."})
    result_ttl_s: int = field(default=7 * 24 * 3600,
                              metadata={"env": "LANDSCOPE_RESULT_TTL_S", "parse": _int(60),
                                        "doc": "How long finished jobs, results and artifacts "
                                               "are kept."})
    idempotency_ttl_s: int = field(default=24 * 3600,
                                   metadata={"env": "LANDSCOPE_IDEMPOTENCY_TTL_S",
                                             "parse": _int(1),
                                             "doc": "How long an Idempotency-Key is remembered."})
    max_attempts: int = field(default=3,
                              metadata={"env": "LANDSCOPE_MAX_ATTEMPTS", "parse": _int(1, 20),
                                        "doc": "Runs of one job before a job whose worker keeps "
                                               "dying is failed."})
    lease_s: float = field(default=20.0,
                           metadata={"env": "LANDSCOPE_LEASE_S", "parse": _float(1.0),
                                     "doc": "A running job whose worker has not renewed its "
                                            "lease for this long is re-run or failed."})
    soft_time_limit_s: int = field(default=6 * 3600,
                                   metadata={"env": "LANDSCOPE_SOFT_TIME_LIMIT_S",
                                             "parse": _int(1),
                                             "doc": "Soft time limit of one job (fails it "
                                                    "cleanly)."})
    hard_time_limit_s: int = field(default=6 * 3600 + 300,
                                   metadata={"env": "LANDSCOPE_HARD_TIME_LIMIT_S",
                                             "parse": _int(1),
                                             "doc": "Hard time limit (kills the worker child)."})
    torch_threads: int = field(default=0,
                               metadata={"env": "LANDSCOPE_TORCH_THREADS", "parse": _int(0, 1024),
                                         "doc": "torch threads per worker child (0: cores / "
                                                "concurrency)."})
    fanout: int = field(default=8,
                        metadata={"env": "LANDSCOPE_FANOUT", "parse": _int(0, 1024),
                                  "doc": "Helper subtasks a job may start for its independent "
                                         "pieces (0: none)."})
    gpu_memory_fraction: float = field(default=0.0,
                                       metadata={"env": "LANDSCOPE_GPU_MEMORY_FRACTION",
                                                 "parse": _float(0.0),
                                                 "doc": "Per-job cap on the GPU memory a worker "
                                                        "process may allocate (0: no cap)."})
    submit_rate_per_min: int = field(default=0,
                                     metadata={"env": "LANDSCOPE_SUBMIT_RATE_PER_MIN",
                                               "parse": _int(0),
                                               "doc": "Job submissions a tenant may make per "
                                                      "minute (429 with Retry-After above; 0: "
                                                      "no limit)."})
    max_waits_per_tenant: int = field(default=64,
                                      metadata={"env": "LANDSCOPE_MAX_WAITS_PER_TENANT",
                                                "parse": _int(0),
                                                "doc": "Concurrent long polls (GET a job with "
                                                       "wait=) one tenant may hold (429 with "
                                                       "Retry-After above; 0: no cap)."})
    max_queued_per_tenant: int = field(default=1000,
                                       metadata={"env": "LANDSCOPE_MAX_QUEUED_PER_TENANT",
                                                 "parse": _int(0),
                                                 "doc": "Queued jobs one tenant may have; a "
                                                        "submit above answers 429 with "
                                                        "Retry-After (0: no cap)."})
    max_running_per_tenant: int = field(default=64,
                                        metadata={"env": "LANDSCOPE_MAX_RUNNING_PER_TENANT",
                                                  "parse": _int(0),
                                                  "doc": "Running jobs one tenant may have; a "
                                                         "submit while that many run answers "
                                                         "429 with Retry-After (0: no cap)."})
    body_timeout_s: float = field(default=30.0,
                                  metadata={"env": "LANDSCOPE_BODY_TIMEOUT_S",
                                            "parse": _float(0.1),
                                            "doc": "A request body must arrive within this "
                                                   "many seconds of the headers (408 and the "
                                                   "connection closed otherwise)."})
    max_runtime_s: int = field(default=0,
                               metadata={"env": "LANDSCOPE_MAX_RUNTIME_S", "parse": _int(0),
                                         "doc": "Default run-time limit of a job (0: none); a "
                                                "job running longer fails with "
                                                "deadline_exceeded, its progress kept."})
    tenant_max_runtime_s: dict[str, int] = field(
        default_factory=dict,
        metadata={"env": "LANDSCOPE_TENANT_MAX_RUNTIME_S", "parse": _tenant_seconds,
                  "doc": "Per-tenant run-time limits, tenant:seconds,...: a tenant's default "
                         "and ceiling for a job's max_runtime_s (overrides "
                         "LANDSCOPE_MAX_RUNTIME_S)."})
    queue_timeout_s: int = field(default=0,
                                 metadata={"env": "LANDSCOPE_QUEUE_TIMEOUT_S", "parse": _int(0),
                                           "doc": "Default queue deadline (0: none): a job not "
                                                  "started this many seconds after its submit "
                                                  "ends expired."})
    cancel_grace_s: float = field(default=2.0,
                                  metadata={"env": "LANDSCOPE_CANCEL_GRACE_S",
                                            "parse": _float(0.1),
                                            "doc": "After a cancel (or a passed deadline), a job "
                                                   "that has not stopped at a cooperative check "
                                                   "within this many seconds is ended and its "
                                                   "pool process killed (the worker replaces "
                                                   "it)."})
    require_gpu_worker: bool = field(default=True,
                                     metadata={"env": "LANDSCOPE_REQUIRE_GPU_WORKER",
                                               "parse": _bool,
                                               "doc": "Refuse device=cuda jobs (422 "
                                                      "no_gpu_worker) while no GPU worker has "
                                                      "a heartbeat; false when GPU workers "
                                                      "scale from zero."})
    webhook_allow_private: bool = field(
        default=False, metadata={"env": "LANDSCOPE_WEBHOOK_ALLOW_PRIVATE", "parse": _bool,
                                 "doc": "Allow webhooks to plain http and to loopback, private "
                                        "and link-local hosts (local use and tests only)."})
    webhook_backoff_s: float = field(
        default=5.0, metadata={"env": "LANDSCOPE_WEBHOOK_BACKOFF_S", "parse": _float(0.001),
                               "doc": "First retry delay of a failed webhook delivery; each "
                                      "retry doubles it (capped at one hour)."})
    webhook_retry_s: float = field(
        default=24 * 3600.0, metadata={"env": "LANDSCOPE_WEBHOOK_RETRY_S", "parse": _float(0),
                                       "doc": "A webhook delivery is retried for this long "
                                              "after its first attempt, then marked failed."})
    webhook_timeout_s: float = field(
        default=10.0, metadata={"env": "LANDSCOPE_WEBHOOK_TIMEOUT_S", "parse": _float(0.1),
                                "doc": "Connect and read timeout of one webhook attempt."})
    webhook_secret_grace_s: float = field(
        default=24 * 3600.0, metadata={"env": "LANDSCOPE_WEBHOOK_SECRET_GRACE_S",
                                       "parse": _float(0),
                                       "doc": "After a secret rotation, deliveries are also "
                                              "signed with the previous secret this long."})
    events_stream_max_s: float = field(
        default=300.0, metadata={"env": "LANDSCOPE_EVENTS_STREAM_MAX_S", "parse": _float(1),
                                 "doc": "Longest life of one Server-Sent-Events response; the "
                                        "client reconnects with Last-Event-ID."})
    log_level: str = field(default="INFO",
                           metadata={"env": "LANDSCOPE_LOG_LEVEL",
                                     "parse": _choice("DEBUG", "INFO", "WARNING", "ERROR"),
                                     "doc": "Log level."})

    def tenant_for(self, key: str) -> str | None:
        """The tenant of an API key, or None."""
        import hashlib
        import hmac

        for known, tenant in self.api_keys.items():
            if hmac.compare_digest(known.encode(), key.encode()):
                return tenant
        if self.api_keys_file is not None:
            digest = hashlib.sha256(key.encode()).hexdigest()
            for tenant, hashed in _keys_file_entries(self.api_keys_file):
                if hmac.compare_digest(hashed, digest):
                    return tenant
        return None


_keys_cache: dict[Path, tuple[float, list[tuple[str, str]]]] = {}


def _keys_file_entries(path: Path) -> list[tuple[str, str]]:
    """The keys file, parsed again only when its modification time changes (so keys can
    be rotated without a restart, and no request reads the file)."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return []  # the file vanished: nobody is admitted through it
    cached = _keys_cache.get(path)
    if cached is None or cached[0] != mtime:
        try:
            cached = (mtime, _read_keys_file(path))
        except SettingsError:
            if cached is None:
                raise
            return cached[1]  # keep the last good keys while a rotation is half-written
        _keys_cache[path] = cached
    return cached[1]


def _read_keys_file(path: Path) -> list[tuple[str, str]]:
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tenant, sep, hashed = line.partition(":")
        if not sep or len(hashed.strip()) != 64:
            raise SettingsError(
                f"LANDSCOPE_API_KEYS_FILE {path}:{lineno}: expected tenant:<sha256 hex of key>."
            )
        out.append((tenant.strip(), hashed.strip().lower()))
    return out


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read and validate every ``LANDSCOPE_*`` variable."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = f.metadata["env"]
        if name in env:
            values[f.name] = f.metadata["parse"](name, env[name])
    values.update(overrides)
    settings = Settings(**values)
    if settings.hard_time_limit_s <= settings.soft_time_limit_s:
        raise SettingsError(
            "LANDSCOPE_HARD_TIME_LIMIT_S must exceed LANDSCOPE_SOFT_TIME_LIMIT_S "
            f"({settings.hard_time_limit_s} <= {settings.soft_time_limit_s})."
        )
    if settings.api_keys_file is not None:
        if not settings.api_keys_file.is_file():
            raise SettingsError(f"LANDSCOPE_API_KEYS_FILE={settings.api_keys_file}: no such file.")
        _read_keys_file(settings.api_keys_file)
    return settings
