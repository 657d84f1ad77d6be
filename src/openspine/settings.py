"""One typed, frozen settings object for a process.

Settings are built explicitly (``Settings(...)``) or from an environment mapping
(``Settings.from_env(os.environ)``), never read at import time. Bad values abort startup
(:class:`SettingsError`); secrets are wrapped so they never print.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["Secret", "Settings", "SettingsError"]

SETTINGS_FILE = "openspine.json"
#: The values of SQLite's ``PRAGMA synchronous`` (FULL, the default, syncs every commit).
SQLITE_SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


class SettingsError(ValueError):
    """A setting is missing or has a value the platform refuses to run with."""


class Secret:
    """A string that does not show itself in ``repr``, ``str`` or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a process needs to run; docs/operations.md lists each variable."""

    store_url: str
    token_signing_key_file: Path
    idp_jwks_file: Path
    public_base_url: str = "http://127.0.0.1:8000"
    idp_issuer: str = "https://cis2.openspine.test"
    access_token_ttl_seconds: int = 600
    writer_max_batch: int = 512
    sqlite_synchronous: str = "FULL"
    #: The writer process's socket (``openspine serve`` sets it; ADR 0015); None: write in-process.
    sqlite_writer_socket: Path | None = None
    #: Where the workers of one server share their request metrics (``openspine serve`` sets
    #: it); None: each process's ``/metrics`` counts its own requests only.
    metrics_dir: Path | None = None
    postgres_pool_size: int = 8
    demo_mode: bool = False
    log_level: str = "INFO"
    mesh_shared_key: Secret | None = None
    mesh_seal_key_file: Path | None = None
    blob_dir: Path | None = None
    mesh_sandbox: bool = False
    mesh_inbox_expiry_days: int = 5
    mesh_retention_days: int = 30
    mesh_job_interval_seconds: int = 60
    #: Days from a prescription's start to its expiry (Spine's default: 180).
    eps_expiry_days: int = 180

    def __post_init__(self) -> None:
        if not (
            self.store_url.startswith("sqlite:///") or self.store_url.startswith("postgresql://")
        ):
            raise SettingsError("store_url must start with sqlite:/// or postgresql://")
        if not self.public_base_url.startswith(("http://", "https://")):
            raise SettingsError("public_base_url must be an http(s) URL")
        if not 30 <= self.access_token_ttl_seconds <= 3600:
            raise SettingsError("access_token_ttl_seconds must be between 30 and 3600")
        if not 1 <= self.writer_max_batch <= 10_000:
            raise SettingsError("writer_max_batch must be between 1 and 10000")
        if self.sqlite_synchronous not in {"FULL", "EXTRA", "NORMAL"}:
            raise SettingsError("sqlite_synchronous must be FULL, EXTRA or NORMAL")
        if self.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError("log_level must be DEBUG, INFO, WARNING or ERROR")
        if not 1 <= self.mesh_inbox_expiry_days <= self.mesh_retention_days <= 3650:
            raise SettingsError("MESH inbox expiry must be at least 1 day and within retention")
        if not 28 <= self.eps_expiry_days <= 366:
            raise SettingsError("eps_expiry_days must be between 28 and 366")
        if not 1 <= self.mesh_job_interval_seconds <= 86_400:
            raise SettingsError("mesh_job_interval_seconds must be between 1 and 86400")

    @property
    def mesh_enabled(self) -> bool:
        return (
            self.mesh_shared_key is not None
            and self.mesh_seal_key_file is not None
            and self.blob_dir is not None
        )

    @property
    def token_url(self) -> str:
        return self.public_base_url.rstrip("/") + "/oauth2/token"

    def with_base_url(self, base_url: str) -> Settings:
        return replace(self, public_base_url=base_url)

    @classmethod
    def for_data_dir(cls, data_dir: Path, *, base_url: str | None = None) -> Settings:
        """Settings of a store created by ``openspine demo`` (read from DIR/openspine.json)."""
        path = data_dir / SETTINGS_FILE
        if not path.is_file():
            raise SettingsError(f"no OpenSpine store in {data_dir} (missing {SETTINGS_FILE})")
        raw = json.loads(path.read_text())
        values: dict[str, Any] = {
            "store_url": raw["store_url"].replace("{data_dir}", str(data_dir)),
            "token_signing_key_file": data_dir / raw["token_signing_key_file"],
            "idp_jwks_file": data_dir / raw["idp_jwks_file"],
            "demo_mode": bool(raw.get("demo_mode", False)),
        }
        if "mesh_shared_key_file" in raw:
            key_file = data_dir / raw["mesh_shared_key_file"]
            if key_file.is_file():
                values["mesh_shared_key"] = Secret(key_file.read_text().strip())
        if "mesh_seal_key_file" in raw:
            values["mesh_seal_key_file"] = data_dir / raw["mesh_seal_key_file"]
        if "blob_dir" in raw:
            values["blob_dir"] = data_dir / raw["blob_dir"]
        if base_url is not None:
            values["public_base_url"] = base_url
        return cls(**values)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from ``OPENSPINE_*`` variables; missing required ones abort."""

        def need(name: str) -> str:
            value = env.get(name)
            if not value:
                raise SettingsError(f"{name} must be set")
            return value

        def integer(name: str, default: int) -> int:
            value = _integer(env, name)
            return default if value is None else value

        demo = env.get("OPENSPINE_DEMO_MODE", "false").lower()
        if demo not in {"true", "false"}:
            raise SettingsError("OPENSPINE_DEMO_MODE must be true or false")
        return cls(
            store_url=need("OPENSPINE_STORE"),
            token_signing_key_file=Path(need("OPENSPINE_TOKEN_SIGNING_KEY_FILE")),
            idp_jwks_file=Path(need("OPENSPINE_IDP_JWKS_FILE")),
            public_base_url=env.get("OPENSPINE_PUBLIC_BASE_URL", "http://127.0.0.1:8000"),
            idp_issuer=env.get("OPENSPINE_IDP_ISSUER", "https://cis2.openspine.test"),
            access_token_ttl_seconds=integer("OPENSPINE_ACCESS_TOKEN_TTL", 600),
            writer_max_batch=integer("OPENSPINE_WRITER_MAX_BATCH", 512),
            sqlite_synchronous=_synchronous(env) or "FULL",
            sqlite_writer_socket=(
                Path(env["OPENSPINE_SQLITE_WRITER_SOCKET"])
                if env.get("OPENSPINE_SQLITE_WRITER_SOCKET")
                else None
            ),
            metrics_dir=(
                Path(env["OPENSPINE_METRICS_DIR"]) if env.get("OPENSPINE_METRICS_DIR") else None
            ),
            postgres_pool_size=integer("OPENSPINE_POSTGRES_POOL_SIZE", 8),
            demo_mode=demo == "true",
            log_level=env.get("OPENSPINE_LOG_LEVEL", "INFO"),
            mesh_shared_key=(
                Secret(env["OPENSPINE_MESH_SHARED_KEY"])
                if env.get("OPENSPINE_MESH_SHARED_KEY")
                else None
            ),
            mesh_seal_key_file=(
                Path(env["OPENSPINE_MESH_SEAL_KEY_FILE"])
                if env.get("OPENSPINE_MESH_SEAL_KEY_FILE")
                else None
            ),
            blob_dir=Path(env["OPENSPINE_BLOB_DIR"]) if env.get("OPENSPINE_BLOB_DIR") else None,
            mesh_sandbox=env.get("OPENSPINE_MESH_SANDBOX", "false").lower() == "true",
            mesh_inbox_expiry_days=integer("OPENSPINE_MESH_INBOX_EXPIRY_DAYS", 5),
            mesh_retention_days=integer("OPENSPINE_MESH_RETENTION_DAYS", 30),
            eps_expiry_days=integer("OPENSPINE_EPS_EXPIRY_DAYS", 180),
        )

    def with_env_overrides(self, env: Mapping[str, str]) -> Settings:
        """A data-dir store's settings with what an operator set on top (the MESH variables,
        SQLite's sync mode, the writer's batch limit, the log level), and the writer process's
        socket and the metrics directory that ``openspine serve`` set."""
        changes: dict[str, Any] = {}
        synchronous = _synchronous(env)
        if synchronous is not None:
            changes["sqlite_synchronous"] = synchronous
        max_batch = _integer(env, "OPENSPINE_WRITER_MAX_BATCH")
        if max_batch is not None:
            changes["writer_max_batch"] = max_batch
        if env.get("OPENSPINE_LOG_LEVEL"):
            changes["log_level"] = env["OPENSPINE_LOG_LEVEL"]
        if env.get("OPENSPINE_SQLITE_WRITER_SOCKET"):
            changes["sqlite_writer_socket"] = Path(env["OPENSPINE_SQLITE_WRITER_SOCKET"])
        if env.get("OPENSPINE_METRICS_DIR"):
            changes["metrics_dir"] = Path(env["OPENSPINE_METRICS_DIR"])
        if env.get("OPENSPINE_MESH_SHARED_KEY"):
            changes["mesh_shared_key"] = Secret(env["OPENSPINE_MESH_SHARED_KEY"])
        if env.get("OPENSPINE_MESH_SANDBOX"):
            changes["mesh_sandbox"] = env["OPENSPINE_MESH_SANDBOX"].lower() == "true"
        return replace(self, **changes) if changes else self


def _integer(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{name} must be an integer") from None


def _synchronous(env: Mapping[str, str]) -> str | None:
    """SQLite's ``PRAGMA synchronous`` mode, checked: it is written into the pragma."""
    value = env.get("OPENSPINE_SQLITE_SYNCHRONOUS")
    if value is None:
        return None
    if value.upper() not in SQLITE_SYNCHRONOUS_MODES:
        raise SettingsError(
            f"OPENSPINE_SQLITE_SYNCHRONOUS must be one of {', '.join(SQLITE_SYNCHRONOUS_MODES)}"
        )
    return value.upper()
