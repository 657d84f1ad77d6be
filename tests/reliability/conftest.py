"""A live OpenSpine (demo population, MESH sandbox mailboxes) for the reliability suites.

The fuzzing and hostile-input suites record each response they get with
:class:`Recorder`, which applies the data-protection scan; the fuzzing suite ends with the scan
of the server's log for patient data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.live_server import Server, serving
from tests.reliability.callers import Callers
from tests.reliability.protection import exposures

#: How many generated requests the fuzzing suite makes per operation (CI: a quick run;
#: ``make reliability`` sets more, see docs/reliability.md).
FUZZ_EXAMPLES = int(os.environ.get("OPENSPINE_FUZZ_EXAMPLES", "12"))
#: Fresh random examples each run (``make reliability``); otherwise the same ones every time.
FUZZ_RANDOM = os.environ.get("OPENSPINE_FUZZ_RANDOM") == "1"
#: Where the suites write their figures (``make reliability`` sets it; docs/reliability.md).
REPORT_DIR = os.environ.get("OPENSPINE_RELIABILITY_REPORT")


def report(name: str, figures: dict[str, object]) -> None:
    """Record one suite's figures as ``<name>.json`` in the report folder, if one is set."""
    if REPORT_DIR:
        Path(REPORT_DIR).mkdir(parents=True, exist_ok=True)
        (Path(REPORT_DIR) / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")


@dataclass
class Recorder:
    """Counts the responses of the suites and the exposures the data-protection scan finds."""

    responses: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    exposed: list[str] = field(default_factory=list)

    def saw(self, status: int, body: bytes, caller_nhs_number: str | None = None) -> None:
        self.responses += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.exposed.extend(exposures(body, caller_nhs_number))


@dataclass
class Live:
    server: Server
    callers: Callers
    recorder: Recorder

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def log_text(self) -> str:
        return self.server.log.read_text()


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    base = tmp_path_factory.mktemp("reliability")
    with serving(base / "store", base / "server.log", patients=200) as server:
        yield Live(server, Callers(server.url, server.data_dir), Recorder())
