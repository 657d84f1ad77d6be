"""The MESH comparison's rounds: each round's ratio, and each server's median over the rounds."""

from __future__ import annotations

from typing import Any

from bench.mesh import median_round, round_ratios


def wrk(send: float, receive: float, *, ran_out: bool = False) -> dict[str, Any]:
    return {
        "send_per_s": send,
        "send_p99_ms": send / 100,
        "send_non2xx": 1,
        "receive_ack_per_s": receive,
        "receive_p99_ms": receive / 100,
        "receive_non2xx": 2,
        "ran_out_of_messages": ran_out,
        "messages_available": 1000,
    }


def test_a_round_compares_the_two_servers_of_that_round() -> None:
    assert round_ratios(wrk(2500, 2000), wrk(250, 400)) == {"send": 10.0, "receive_ack": 5.0}


def test_a_receive_ratio_is_not_given_where_a_server_ran_out_of_messages() -> None:
    assert round_ratios(wrk(2500, 2000), wrk(250, 400, ran_out=True))["receive_ack"] is None
    assert round_ratios(wrk(2500, 2000, ran_out=True), wrk(250, 400))["receive_ack"] is None


def test_a_server_that_answered_nothing_gives_a_ratio_not_an_error() -> None:
    assert round_ratios(wrk(2500, 2000), wrk(0, 0)) == {"send": 25000.0, "receive_ack": 20000.0}


def test_each_figure_is_the_median_of_the_rounds_and_failures_add_up() -> None:
    summary = median_round([wrk(2000, 900), wrk(3000, 1000), wrk(2500, 2000, ran_out=True)])
    assert summary["send_per_s"] == 2500
    assert summary["receive_ack_per_s"] == 1000
    assert summary["send_p99_ms"] == 25.0
    assert summary["send_non2xx"] == 3
    assert summary["receive_non2xx"] == 6
    assert summary["ran_out_of_messages"] is True
    assert summary["rounds"] == 3
