"""Metrics (Prometheus text at /metrics) and coded log events that never carry patient data.

Log lines name a route template (``/Patient/{nhs_number}``), never a path or query string, and
an exception's class, never its message. Patient data belongs in the audit trail only.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

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


class Metrics:
    """Per-application registry, so that two apps in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "openspine_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "openspine_http_request_duration_seconds",
            "Time from request to the end of the response, by route template",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[str, Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        # The labelled children are looked up once per label set, not on every request.
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(route, method, str(status))
        histogram = self._histograms.get(route)
        if histogram is None:
            histogram = self._histograms[route] = self.latency.labels(route)
        counter.inc()
        histogram.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
