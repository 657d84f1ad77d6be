"""`openspine serve --workers 2`: a scrape of /metrics, whichever worker answers, counts the
requests of both workers (ADR 0018)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.live_server import Server, serving

pytestmark = pytest.mark.e2e

PING = 'openspine_http_requests_total{method="GET",route="/_ping",status="200"}'


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("metrics")
    with serving(base / "store", base / "server.log", workers=2) as running:
        yield running


def pings_counted(text: str) -> float:
    match = re.search(re.escape(PING) + r" (\S+)", text)
    return float(match.group(1)) if match else 0.0


def test_every_scrape_counts_both_workers_requests(two_workers: Server) -> None:
    sent = 200
    with httpx.Client(base_url=two_workers.url, timeout=10) as http:
        before = pings_counted(http.get("/metrics").text)
        for _ in range(sent):
            # A new connection each time: granian gives connections, not requests, to workers.
            with httpx.Client(base_url=two_workers.url, timeout=10) as one:
                assert one.get("/_ping").status_code == 200
        metrics_dir = two_workers.tmp.glob("openspine-metrics-*")
        time.sleep(2.5)  # each worker writes its numbers every second
        pids = {p.stem for d in metrics_dir for p in d.glob("*.json")}
        scrapes = []
        for _ in range(6):
            with httpx.Client(base_url=two_workers.url, timeout=10) as one:
                scrapes.append(pings_counted(one.get("/metrics").text))
    assert all(counted >= before + sent for counted in scrapes), (before, scrapes)
    assert len(pids) == 2, "both workers wrote their numbers"
