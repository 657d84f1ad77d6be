from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from openspine.platform import errors
from openspine.platform.errors import (
    InvalidatedResource,
    InvalidResourceId,
    ResourceNotFound,
    ResourceVersionMismatch,
    SpineError,
)
from openspine.settings import Secret, Settings, SettingsError
from tests.conftest import pds_stub

#: The variables `Settings.from_env` cannot start without.
_REQUIRED = {
    "OPENSPINE_STORE": "sqlite:///x.db",
    "OPENSPINE_TOKEN_SIGNING_KEY_FILE": "k.pem",
    "OPENSPINE_IDP_JWKS_FILE": "j.json",
}


@pytest.mark.parametrize(
    "error", [InvalidResourceId, ResourceNotFound, InvalidatedResource, ResourceVersionMismatch]
)
def test_outcome_equals_the_nhs_stub(error: type[SpineError]) -> None:
    stub = pds_stub(f"errorResponses/{error.code}.json")
    assert json.loads(error().outcome()) == stub


def test_settings_fail_closed(tmp_path: Path) -> None:
    with pytest.raises(SettingsError):
        Settings(store_url="mysql://x", token_signing_key_file=tmp_path, idp_jwks_file=tmp_path)
    with pytest.raises(SettingsError):
        Settings.from_env({"OPENSPINE_STORE": "sqlite:///x"})
    with pytest.raises(SettingsError):
        Settings.for_data_dir(tmp_path)


def test_secret_does_not_print() -> None:
    assert "hunter2" not in repr(Secret("hunter2"))
    assert "hunter2" not in str(Secret("hunter2"))


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidSearchData,
        errors.AdditionalProperties,
        errors.InvalidUpdate,
        errors.InvalidCreate,
        errors.TooFewValuesSubmitted,
        errors.TooManyValuesSubmitted,
        errors.ForbiddenUpdate,
        errors.MissingValue,
        errors.InvalidValue,
        errors.PreconditionFailed,
        errors.UnsupportedService,
    ],
)
def test_outcome_with_diagnostics_matches_the_nhs_stub(error: type[SpineError]) -> None:
    stub = pds_stub(f"errorResponses/{error.code}.json")
    ours = json.loads(error("why").outcome())
    for outcome in (stub, ours):
        outcome["issue"][0].pop("diagnostics", None)
    assert ours == stub


def test_serve_sets_the_writer_socket_and_metrics_directory_for_its_workers(
    tmp_path: Path,
) -> None:
    assert Settings.from_env(_REQUIRED).metrics_dir is None
    served = {
        **_REQUIRED,
        "OPENSPINE_METRICS_DIR": str(tmp_path / "m"),
        "OPENSPINE_SQLITE_WRITER_SOCKET": str(tmp_path / "w.sock"),
    }
    from_env = Settings.from_env(served)
    assert from_env.metrics_dir == tmp_path / "m"
    overridden = Settings.from_env(_REQUIRED).with_env_overrides(served)
    assert overridden.metrics_dir == tmp_path / "m"
    assert overridden.sqlite_writer_socket == tmp_path / "w.sock"


def test_an_operators_tuning_applies_to_a_data_dir_store_too() -> None:
    """`serve --data-dir` reads the store's openspine.json; the operator's variables still win."""
    base = Settings.from_env(_REQUIRED)
    assert (base.sqlite_synchronous, base.writer_max_batch) == ("FULL", 512)
    tuned = base.with_env_overrides(
        {
            "OPENSPINE_SQLITE_SYNCHRONOUS": "normal",
            "OPENSPINE_WRITER_MAX_BATCH": "64",
            "OPENSPINE_LOG_LEVEL": "WARNING",
        }
    )
    assert (tuned.sqlite_synchronous, tuned.writer_max_batch, tuned.log_level) == (
        "NORMAL",
        64,
        "WARNING",
    )
    assert base.with_env_overrides({}) is base


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPENSPINE_SQLITE_SYNCHRONOUS", "FULL; DROP TABLE resources"),
        ("OPENSPINE_SQLITE_SYNCHRONOUS", "sometimes"),
        ("OPENSPINE_WRITER_MAX_BATCH", "many"),
    ],
)
def test_a_bad_tuning_value_stops_start_up_with_its_name(name: str, value: str) -> None:
    builds: tuple[Callable[[], Settings], ...] = (
        lambda: Settings.from_env({**_REQUIRED, name: value}),
        lambda: Settings.from_env(_REQUIRED).with_env_overrides({name: value}),
    )
    for build in builds:
        with pytest.raises(SettingsError, match=name):
            build()
