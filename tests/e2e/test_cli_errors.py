"""The command line tells an operator what is wrong in one line, never with a stack trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from openspine.platform.storage.migrate import OLDEST_SERVED, downgrade
from openspine.platform.storage.sqlite_access import access_path
from openspine.settings import SETTINGS_FILE
from openspine.synth.demo import create_keys_and_settings

pytestmark = pytest.mark.e2e


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``openspine ARGS`` in its own process, as an operator runs it (a failure must end it)."""
    return subprocess.run(
        [sys.executable, "-m", "openspine.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_an_unreachable_store_is_one_clear_line(tmp_path: Path) -> None:
    create_keys_and_settings(tmp_path)
    settings = json.loads((tmp_path / SETTINGS_FILE).read_text())
    settings["store_url"] = "postgresql://postgres:secret@127.0.0.1:1/nowhere"
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(settings))
    result = _cli("audit", "verify", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "the store is unavailable" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "secret" not in result.stderr + result.stdout


def test_an_access_chain_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    """Both chains are checked; one that is gone fails the check, and the other still says
    how it stands (ADR 0025)."""
    create_keys_and_settings(tmp_path)  # a store at the latest migration, both chains empty
    access = access_path(tmp_path / "openspine.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{access}{suffix}").unlink(missing_ok=True)
    result = _cli("audit", "verify", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "audit chain main intact: 0 events verified" in result.stdout
    assert "audit chain access could not be read" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not access.exists()


def test_serving_a_store_too_old_to_run_on_says_to_migrate(tmp_path: Path) -> None:
    create_keys_and_settings(tmp_path)  # the store at the latest migration
    store = tmp_path / "openspine.db"
    downgrade(f"sqlite:///{store}", "0002")  # older than this version can run on
    result = _cli("serve", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert f"needs at least {OLDEST_SERVED}: run `openspine migrate`" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_serving_with_a_bad_sync_mode_names_the_variable(tmp_path: Path) -> None:
    create_keys_and_settings(tmp_path)
    result = _cli(
        "serve",
        "--data-dir",
        str(tmp_path),
        env={**os.environ, "OPENSPINE_SQLITE_SYNCHRONOUS": "sometimes"},
    )
    assert result.returncode == 1
    assert "OPENSPINE_SQLITE_SYNCHRONOUS must be one of" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
