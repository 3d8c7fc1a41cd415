"""Structured JSON logs carrying the job id and the tenant.

``configure_logging(level)`` installs a JSON formatter on the root logger; the context
variables ``job_id_var`` and ``tenant_var`` are added to every record logged while they
are set (the API sets the tenant per request, the worker sets both per job).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

__all__ = ["JsonFormatter", "configure_logging", "job_id_var", "tenant_var"]

job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
tenant_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant", default=None)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


_base_factory = logging.getLogRecordFactory()


def _record_factory(*args: object, **kwargs: object) -> logging.LogRecord:
    """Stamp the job id and tenant on each record when it is created."""
    record = _base_factory(*args, **kwargs)
    record._ctx_job_id = job_id_var.get()  # type: ignore[attr-defined]
    record._ctx_tenant = tenant_var.get()  # type: ignore[attr-defined]
    return record


if getattr(logging.getLogRecordFactory(), "__name__", "") != "_record_factory":
    logging.setLogRecordFactory(_record_factory)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None) or getattr(record, "_ctx_job_id", None)
        tenant = getattr(record, "tenant", None) or getattr(record, "_ctx_tenant", None)
        if job_id:
            out["job_id"] = job_id
        if tenant:
            out["tenant"] = tenant
        for k, v in vars(record).items():
            if k not in _STANDARD and k not in out and not k.startswith("_ctx_") \
                    and k not in ("job_id", "tenant"):
                out[k] = v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.handlers = [handler]
    root.setLevel(level)
