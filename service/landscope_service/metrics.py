"""Prometheus metrics kept in Redis, so every API process and worker host adds to one set.

Counters and histograms are Redis hashes updated with one pipelined call per event;
``/metrics`` (any API replica) renders them, plus gauges read at scrape time (queue
depth, running jobs, live workers). Metric names follow Prometheus conventions:

- ``landscope_http_request_duration_seconds{method,endpoint,status}`` histogram
- ``landscope_jobs_submitted_total{kind}``, ``landscope_jobs_finished_total{kind,status}``
- ``landscope_job_duration_seconds{kind,status}`` histogram (started -> finished)
- ``landscope_products_total{kind}``: Hessian/Jacobian-vector products computed
- ``landscope_queue_depth{queue}``, ``landscope_jobs_running``, ``landscope_workers``
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["RedisMetrics", "registry_for"]

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_BUCKETS = (0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
_SEP = "\x1f"


def _bucket(value: float, buckets: Sequence[float]) -> str:
    for b in buckets:
        if value <= b:
            return repr(b)
    return "+Inf"


class RedisMetrics:
    """Writes and reads the metric hashes."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def _observe(self, pipe: Any, name: str, labels: tuple[str, ...], value: float,
                 buckets: Sequence[float]) -> None:
        key = _SEP.join(labels)
        pipe.hincrby(f"ls:m:{name}:bucket", key + _SEP + _bucket(value, buckets), 1)
        pipe.hincrbyfloat(f"ls:m:{name}:sum", key, value)
        pipe.hincrby(f"ls:m:{name}:count", key, 1)

    def http_request(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        pipe = self.client.pipeline(transaction=False)
        self._observe(pipe, "http", (method, endpoint, str(status)), seconds, HTTP_BUCKETS)
        pipe.execute()

    def http_requests(self, observations: Sequence[tuple[str, str, int, float]]) -> None:
        """Many ``(method, endpoint, status, seconds)`` observations in one round trip.

        They are added up here first: one increment per series and bucket, one sum and
        one count per series, however many requests the batch holds.
        """
        if not observations:
            return
        buckets: dict[str, int] = {}
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for method, endpoint, status, seconds in observations:
            key = _SEP.join((method, endpoint, str(status)))
            bucket = key + _SEP + _bucket(seconds, HTTP_BUCKETS)
            buckets[bucket] = buckets.get(bucket, 0) + 1
            sums[key] = sums.get(key, 0.0) + seconds
            counts[key] = counts.get(key, 0) + 1
        pipe = self.client.pipeline(transaction=False)
        for field, n in buckets.items():
            pipe.hincrby("ls:m:http:bucket", field, n)
        for key, total in sums.items():
            pipe.hincrbyfloat("ls:m:http:sum", key, total)
            pipe.hincrby("ls:m:http:count", key, counts[key])
        pipe.execute()

    submitted_key = "ls:m:submitted"
    """The hash of submissions per kind (the job store's creation script counts there)."""

    def job_submitted(self, kind: str, pipe: Any = None) -> None:
        """Count a submission (in ``pipe``, a Redis pipeline, when given)."""
        (pipe if pipe is not None else self.client).hincrby(self.submitted_key, kind, 1)

    def job_finished(self, kind: str, status: str, seconds: float | None,
                     products: int | None = None) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby("ls:m:finished", _SEP.join((kind, status)), 1)
        if seconds is not None:
            self._observe(pipe, "jobdur", (kind, status), seconds, JOB_BUCKETS)
        if products:
            pipe.hincrby("ls:m:products", kind, int(products))
        pipe.execute()

    # ------------------------------------------------------------------ reading
    def _hash(self, key: str) -> dict[str, str]:
        return {k.decode(): v.decode()
                for k, v in self.client.hgetall(key).items()}  # type: ignore[union-attr]

    def _histogram(self, name: str, metric: str, doc: str, labels: list[str],
                   buckets: Sequence[float]) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(metric, doc, labels=labels)
        counts = self._hash(f"ls:m:{name}:bucket")
        sums = self._hash(f"ls:m:{name}:sum")
        per_series: dict[str, dict[str, int]] = {}
        for k, v in counts.items():
            series, _, le = k.rpartition(_SEP)
            per_series.setdefault(series, {})[le] = int(v)
        for series, by_le in sorted(per_series.items()):
            cumulative = 0
            out = []
            for b in [*map(repr, buckets), "+Inf"]:
                cumulative += by_le.get(b, 0)
                out.append((b, cumulative))
            fam.add_metric(series.split(_SEP), out, float(sums.get(series, 0.0)))
        return fam

    def collect(self) -> Iterator[Any]:
        yield self._histogram("http", "landscope_http_request_duration_seconds",
                              "HTTP request latency.", ["method", "endpoint", "status"],
                              HTTP_BUCKETS)
        sub = CounterMetricFamily("landscope_jobs_submitted", "Jobs accepted.", labels=["kind"])
        for kind, v in sorted(self._hash("ls:m:submitted").items()):
            sub.add_metric([kind], float(v))
        yield sub
        fin = CounterMetricFamily("landscope_jobs_finished", "Jobs finished, by final status.",
                                  labels=["kind", "status"])
        for k, v in sorted(self._hash("ls:m:finished").items()):
            fin.add_metric(k.split(_SEP), float(v))
        yield fin
        yield self._histogram("jobdur", "landscope_job_duration_seconds",
                              "Job run time (started to finished).", ["kind", "status"],
                              JOB_BUCKETS)
        prod = CounterMetricFamily("landscope_products",
                                   "Curvature products (Hessian/GGN/Jacobian-vector) computed.",
                                   labels=["kind"])
        for kind, v in sorted(self._hash("ls:m:products").items()):
            prod.add_metric([kind], float(v))
        yield prod
        depth = GaugeMetricFamily("landscope_queue_depth", "Tasks waiting in the broker.",
                                  labels=["queue"])
        for q in ("cpu", "gpu"):
            depth.add_metric([q], float(self.client.llen(q)))  # type: ignore[arg-type]
        yield depth
        yield GaugeMetricFamily("landscope_jobs_running", "Jobs running now.",
                                value=float(self.client.scard("ls:running")))  # type: ignore[arg-type]
        workers = [json.loads(self.client.get(k) or b"{}")  # type: ignore[arg-type]
                   for k in self.client.scan_iter(match="ls:worker:*", count=100)]
        wg = GaugeMetricFamily("landscope_workers", "Workers with a live heartbeat.",
                               labels=["queue"])
        for q in ("cpu", "gpu"):
            wg.add_metric([q], float(sum(1 for w in workers if q in w.get("queues", []))))
        yield wg


class _Adapter(Collector):
    def __init__(self, metrics: RedisMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        yield from self.metrics.collect()


def registry_for(metrics: RedisMetrics) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Adapter(metrics))
    return reg
