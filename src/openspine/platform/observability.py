"""Metrics (Prometheus text at /metrics) and coded log events that never carry patient data.

Log lines name a route template (``/Patient/{nhs_number}``), never a path or query string, and
an exception's class, never its message. Patient data belongs in the audit trail only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from bisect import bisect_left
from collections.abc import Iterator
from enum import StrEnum
from itertools import accumulate
from pathlib import Path
from typing import Final

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

__all__ = ["PUBLISH_EVERY_SECONDS", "LogEvent", "Metrics", "log_event", "publish_metrics"]

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
    #: A worker could not write its request metrics for the other workers' scrapes.
    METRICS_NOT_SHARED = "metrics.not-shared"


def log_event(event: LogEvent, level: int = logging.INFO, **fields: str | int | float) -> None:
    """Log a coded event; ``fields`` must be operational values (routes, counts, classes)."""
    detail = " ".join(f"{k}={v}" for k, v in sorted(fields.items()))
    _log.log(level, "%s %s", event.value, detail)


#: Upper bounds (seconds) of the request-duration histogram's buckets.
LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

#: The bounds as Prometheus writes them in ``le`` labels ("0.0005" … "2.5", then "+Inf").
_BOUNDS: Final = (*(repr(bound) for bound in LATENCY_BUCKETS), "+Inf")


class _Snapshot(msgspec.Struct):
    """One worker's numbers as it last wrote them for the others (:meth:`Metrics.publish`)."""

    counts: list[tuple[str, str, int, int]]
    latency: list[tuple[str, list[int], float]]


_SNAPSHOT = msgspec.json.Decoder(_Snapshot)


class _RouteLatency:
    """One route's histogram as plain numbers: a count per bucket (not cumulative), and the sum."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one: above every bound
        self.total = 0.0

    def add(self, buckets: list[int], total: float) -> None:
        self.buckets = [mine + theirs for mine, theirs in zip(self.buckets, buckets, strict=True)]
        self.total += total


class Metrics:
    """Per-application registry, so that two apps in one process (tests) never collide.

    Requests are counted in plain ints and floats by the event loop's thread, the only one that
    answers requests and the only one that renders ``/metrics``; the Prometheus families are
    built from them when scraped (:meth:`collect`). prometheus_client's own ``Counter`` and
    ``Histogram`` take a lock for every increment, three times per request (ADR 0018).

    Several workers on one port (``openspine serve --workers N``): a scrape reaches one of them.
    With ``share_dir`` set, each worker writes its numbers there (:meth:`publish`, every second
    from the app's lifespan) and a scrape adds every other worker's last numbers to its own, so
    each scrape counts the whole server. A worker that has gone keeps its file, so totals never
    go back; ``openspine serve`` makes the directory afresh for each run.
    """

    def __init__(self, share_dir: Path | None = None, name: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._counts: dict[tuple[str, str, int], int] = {}
        self._latency: dict[str, _RouteLatency] = {}
        self._share_dir = share_dir
        # Not the pid alone: a worker started later in the run may be given a gone worker's
        # pid, and would then overwrite (and stop counting) that worker's last numbers.
        self._name = name or f"{os.getpid()}-{secrets.token_hex(8)}"
        self.registry.register(self)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = _RouteLatency()
        latency.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency.total += seconds

    @property
    def shared(self) -> bool:
        return self._share_dir is not None

    def publish(self) -> None:
        """Write this worker's numbers for the other workers' scrapes (replaced whole)."""
        if self._share_dir is None:
            return
        snapshot = _Snapshot(
            counts=[(*key, count) for key, count in self._counts.items()],
            latency=[(route, h.buckets, h.total) for route, h in self._latency.items()],
        )
        path = self._share_dir / f"{self._name}.json"
        partial = self._share_dir / f".{self._name}.partial"
        partial.write_bytes(msgspec.json.encode(snapshot))
        os.replace(partial, path)

    def _others(self) -> Iterator[_Snapshot]:
        if self._share_dir is None:
            return
        for path in self._share_dir.glob("*.json"):
            if path.stem == self._name:
                continue
            try:
                yield _SNAPSHOT.decode(path.read_bytes())
            except (OSError, msgspec.DecodeError):
                continue  # gone, or not ours: the other workers still count

    def collect(self) -> Iterator[Metric]:
        counts = dict(self._counts)
        latency: dict[str, _RouteLatency] = {}
        for route, mine in self._latency.items():
            latency.setdefault(route, _RouteLatency()).add(mine.buckets, mine.total)
        for other in self._others():
            for route, method, status, count in other.counts:
                counts[(route, method, status)] = counts.get((route, method, status), 0) + count
            for route, buckets, total in other.latency:
                if len(buckets) == len(_BOUNDS):  # else written with other buckets: not comparable
                    latency.setdefault(route, _RouteLatency()).add(buckets, total)
        requests = CounterMetricFamily(
            "openspine_http_requests",
            "HTTP requests answered, by route template, method and status",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in counts.items():
            requests.add_metric([route, method, str(status)], count)
        durations = HistogramMetricFamily(
            "openspine_http_request_duration_seconds",
            "Time from request to the end of the response, by route template",
            labels=["route"],
        )
        for route, merged in latency.items():
            cumulative = accumulate(merged.buckets)
            durations.add_metric([route], list(zip(_BOUNDS, cumulative, strict=True)), merged.total)
        return iter((requests, durations))

    def render(self) -> bytes:
        return generate_latest(self.registry)


#: How often a worker writes its numbers for the others' scrapes: a scrape may miss the last
#: second of another worker's requests, never more.
PUBLISH_EVERY_SECONDS: Final = 1.0


async def publish_metrics(metrics: Metrics, every: float = PUBLISH_EVERY_SECONDS) -> None:
    """Write ``metrics`` for the other workers every ``every`` seconds, until cancelled."""
    while True:
        await asyncio.sleep(every)
        try:
            metrics.publish()
        except OSError as exc:  # the directory went (the server is stopping): try again later
            log_event(LogEvent.METRICS_NOT_SHARED, logging.WARNING, error=type(exc).__name__)
