"""A short smoke run of the benchmark harness (the real runs are `make bench`, not CI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (.ci/run installs it)"
)
def test_the_spine_mix_runs_with_no_errors(tmp_path: Path) -> None:
    env = {**os.environ, "OPENSPINE_BENCH_RESULTS": str(tmp_path)}
    command = [
        sys.executable,
        "-m",
        "bench.run",
        "--patients",
        "6000",
        "--duration",
        "2",
        "--workers",
        "2",
    ]
    for scenario, rounds in (("load", "1"), ("mix", "2")):
        subprocess.run(
            [
                *command,
                *("--scenario", scenario, "--reuse-store", "--expected-rps", "400"),
                *("--rounds", rounds),
            ],
            env=env,
            cwd=Path(__file__).resolve().parents[2],
            check=True,
            timeout=300,
            capture_output=True,
        )
    mix = json.loads((tmp_path / "pds-mix-6000-w2-c32.json").read_text())
    assert mix["openspine"]["requests"] > 0
    assert mix["openspine"]["errors"] == 0
    assert mix["openspine"]["non2xx"] == 0
    assert mix["ceiling"]["rps"] > 0
    # Two rounds, each against a server started afresh with freshly prepared inputs, and the
    # kept figures are one of them.
    assert [r["openspine_errors"] for r in mix["rounds"]] == [0, 0]
    assert mix["ratio"] in [r["ratio"] for r in mix["rounds"]]
    assert mix["openspine"]["rps"] in [r["openspine_rps"] for r in mix["rounds"]]
    load = json.loads((tmp_path / "load-6000.json").read_text())
    assert load["patients_per_s"] > 0
