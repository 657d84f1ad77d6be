"""Request metrics as Prometheus text: counts by route, method and status; latency histograms."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from openspine.platform.observability import LATENCY_BUCKETS, Metrics

ROUTE = "/personal-demographics/FHIR/R4/Patient/{nhs_number}"


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_requests_are_counted_by_route_method_and_status() -> None:
    metrics = Metrics()
    for status in (200, 200, 404):
        metrics.observe(ROUTE, "GET", status, 0.002)
    metrics.observe(ROUTE, "PATCH", 200, 0.002)
    found = samples(metrics)
    name = "openspine_http_requests_total"
    assert found[(name, (("method", "GET"), ("route", ROUTE), ("status", "200")))] == 2
    assert found[(name, (("method", "GET"), ("route", ROUTE), ("status", "404")))] == 1
    assert found[(name, (("method", "PATCH"), ("route", ROUTE), ("status", "200")))] == 1


def test_latency_buckets_are_cumulative_and_a_bound_holds_its_own_value() -> None:
    metrics = Metrics()
    for seconds in (0.0005, 0.0007, 0.3, 9.0):
        metrics.observe(ROUTE, "GET", 200, seconds)
    found = samples(metrics)
    name = "openspine_http_request_duration_seconds"

    def bucket(le: str) -> float:
        return found[(f"{name}_bucket", (("le", le), ("route", ROUTE)))]

    assert bucket("0.0005") == 1  # "less than or equal"
    assert bucket("0.001") == 2
    assert bucket("0.25") == 2
    assert bucket("0.5") == 3
    assert bucket(str(LATENCY_BUCKETS[-1])) == 3
    assert bucket("+Inf") == 4
    assert found[(f"{name}_count", (("route", ROUTE),))] == 4
    assert abs(found[(f"{name}_sum", (("route", ROUTE),))] - 9.3012) < 1e-9


def test_two_apps_in_one_process_keep_their_own_counts() -> None:
    first, second = Metrics(), Metrics()
    first.observe(ROUTE, "GET", 200, 0.001)
    assert not any(name.startswith("openspine_http_requests") for name, _ in samples(second))


def test_a_scrape_counts_every_worker_that_shares_the_directory(tmp_path: Path) -> None:
    first, second = Metrics(tmp_path, name="101"), Metrics(tmp_path, name="102")
    for _ in range(3):
        first.observe(ROUTE, "GET", 200, 0.002)
    second.observe(ROUTE, "GET", 200, 0.3)
    second.observe(ROUTE, "GET", 404, 0.001)
    first.publish()
    found = samples(second)  # second's own numbers, live, and first's as it last wrote them
    name = "openspine_http_requests_total"
    assert found[(name, (("method", "GET"), ("route", ROUTE), ("status", "200")))] == 4
    assert found[(name, (("method", "GET"), ("route", ROUTE), ("status", "404")))] == 1
    duration = "openspine_http_request_duration_seconds"
    assert found[(f"{duration}_count", (("route", ROUTE),))] == 5
    assert found[(f"{duration}_bucket", (("le", "0.0025"), ("route", ROUTE)))] == 4
    assert abs(found[(f"{duration}_sum", (("route", ROUTE),))] - 0.307) < 1e-9


def test_a_worker_counts_itself_live_not_from_its_own_file(tmp_path: Path) -> None:
    metrics = Metrics(tmp_path, name="101")
    metrics.observe(ROUTE, "GET", 200, 0.002)
    metrics.publish()
    metrics.observe(ROUTE, "GET", 200, 0.002)
    found = samples(metrics)
    key = ("method", "GET"), ("route", ROUTE), ("status", "200")
    assert found[("openspine_http_requests_total", key)] == 2


def test_a_gone_workers_last_numbers_still_count_and_garbage_is_skipped(tmp_path: Path) -> None:
    gone = Metrics(tmp_path, name="101")
    gone.observe(ROUTE, "GET", 200, 0.002)
    gone.publish()
    del gone
    (tmp_path / "junk.json").write_bytes(b"not json")
    (tmp_path / "other.json").write_bytes(b'{"counts": [["/x", "GET", 200, 1]], "latency": []}')
    found = samples(Metrics(tmp_path, name="102"))
    name = "openspine_http_requests_total"
    assert found[(name, (("method", "GET"), ("route", ROUTE), ("status", "200")))] == 1
    assert found[(name, (("method", "GET"), ("route", "/x"), ("status", "200")))] == 1


def test_publishing_replaces_the_file_whole(tmp_path: Path) -> None:
    metrics = Metrics(tmp_path, name="101")
    metrics.observe(ROUTE, "GET", 200, 0.002)
    metrics.publish()
    metrics.publish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["101.json"]


def test_a_worker_given_a_gone_workers_pid_does_not_take_over_its_file(tmp_path: Path) -> None:
    """Two workers of one process id (the OS reused it) each keep their own file."""
    gone = Metrics(tmp_path)
    gone.observe(ROUTE, "GET", 200, 0.002)
    gone.publish()
    later = Metrics(tmp_path)
    later.observe(ROUTE, "GET", 200, 0.002)
    later.publish()
    assert len(list(tmp_path.glob("*.json"))) == 2
    key = ("method", "GET"), ("route", ROUTE), ("status", "200")
    assert samples(later)[("openspine_http_requests_total", key)] == 2
