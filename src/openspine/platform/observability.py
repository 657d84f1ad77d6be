"""Metrics (Prometheus text at /metrics) and coded log events that never carry patient data.

Log lines name a route template (``/Patient/{nhs_number}``), never a path or query string, and
an exception's class, never its message. Patient data belongs in the audit trail only.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Iterator
from enum import StrEnum
from itertools import accumulate
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

__all__ = ["LogEvent", "Metrics", "log_event"]

_log = logging.getLogger("openspine")


class LogEvent(StrEnum):
    """The vocabulary of operational log events."""

    STARTED = "platform.started"
    STOPPED = "platform.stopped"
    UNHANDLED_ERROR = "request.unhandled-error"
    STORE_UNAVAILABLE = "store.unavailable"
    #: A worker writes through its own writer thread until it links again (ADR 0015, 0017).
    WRITER_LINK_LOST = "store.writer-link-lost"
    #: A worker whose link had failed writes through the writer process again.
    WRITER_LINK_RESTORED = "store.writer-link-restored"
    #: ``openspine serve`` starts a writer process again after it died.
    WRITER_RESTARTED = "store.writer-restarted"
    #: The writer process closed a worker's link (it went away, or sent an unreadable frame).
    WRITER_LINK_CLOSED = "store.writer-link-closed"


def log_event(event: LogEvent, level: int = logging.INFO, **fields: str | int | float) -> None:
    """Log a coded event; ``fields`` must be operational values (routes, counts, classes)."""
    detail = " ".join(f"{k}={v}" for k, v in sorted(fields.items()))
    _log.log(level, "%s %s", event.value, detail)


#: Upper bounds (seconds) of the request-duration histogram's buckets.
LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

#: The bounds as Prometheus writes them in ``le`` labels ("0.0005" … "2.5", then "+Inf").
_BOUNDS: Final = (*(repr(bound) for bound in LATENCY_BUCKETS), "+Inf")


class _RouteLatency:
    """One route's histogram as plain numbers: a count per bucket (not cumulative), and the sum."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one: above every bound
        self.total = 0.0


class Metrics:
    """Per-application registry, so that two apps in one process (tests) never collide.

    Requests are counted in plain ints and floats by the event loop's thread, the only one that
    answers requests and the only one that renders ``/metrics``; the Prometheus families are
    built from them when scraped (:meth:`collect`). prometheus_client's own ``Counter`` and
    ``Histogram`` take a lock for every increment, three times per request (ADR 0018).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._counts: dict[tuple[str, str, int], int] = {}
        self._latency: dict[str, _RouteLatency] = {}
        self.registry.register(self)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = _RouteLatency()
        latency.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency.total += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "openspine_http_requests",
            "HTTP requests answered, by route template, method and status",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in self._counts.items():
            requests.add_metric([route, method, str(status)], count)
        durations = HistogramMetricFamily(
            "openspine_http_request_duration_seconds",
            "Time from request to the end of the response, by route template",
            labels=["route"],
        )
        for route, latency in self._latency.items():
            cumulative = list(accumulate(latency.buckets))
            durations.add_metric(
                [route], list(zip(_BOUNDS, cumulative, strict=True)), latency.total
            )
        return iter((requests, durations))

    def render(self) -> bytes:
        return generate_latest(self.registry)
