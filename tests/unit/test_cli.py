"""`openspine serve` starts one web worker per core it may run on unless told otherwise."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from openspine import cli


def test_the_available_cores_are_the_process_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 2, 5}, raising=False)
    assert cli.available_cores() == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(200)), raising=False)
    assert cli.available_cores() == cli.MAX_WORKERS


def test_without_an_affinity_the_machine_s_cores_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert cli.available_cores() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert cli.available_cores() == 1


@pytest.mark.parametrize(("given", "expected"), [((), 3), (("--workers", "1"), 1)])
def test_serve_defaults_to_one_worker_per_available_core(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: tuple[str, ...], expected: int
) -> None:
    started: list[Any] = []
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(cli, "_settings", lambda *_args: None)
    monkeypatch.setattr(cli, "_serve", lambda *args: started.append(args))
    result = CliRunner().invoke(cli.main, ["serve", "--data-dir", str(tmp_path), *given])
    assert result.exit_code == 0, result.output
    assert started == [(tmp_path.resolve(), "127.0.0.1", 8000, expected)]


def test_demo_brings_an_earlier_demo_store_up_to_date(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from openspine.platform.storage.migrate import downgrade, schema_behind
    from openspine.synth.demo import create_keys_and_settings

    url = create_keys_and_settings(tmp_path).store_url
    downgrade(url, "0005")  # as 0.8.5 left it
    behind = schema_behind(url)
    assert behind is not None
    assert behind[0] == "0005"
    monkeypatch.setattr(cli, "_serve", lambda *args: None)
    # Not a loaded demo: no demo users' credentials to refresh.
    monkeypatch.setattr(cli, "refresh_credentials", lambda *args: None)
    result = CliRunner().invoke(cli.main, ["demo", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert schema_behind(url) is None
