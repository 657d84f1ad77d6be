"""``openspine``: run the platform, make demo data, get tokens, verify the audit trail."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from openspine.app import Platform, build_platform
from openspine.mesh.mailboxes import SANDBOX_SHARED_KEY
from openspine.platform.audit.events import AuditContext
from openspine.platform.audit.verify import VerificationResult, verify_chain
from openspine.platform.errors import SpineError
from openspine.platform.security.keys import load_private_key
from openspine.platform.storage.migrate import OLDEST_SERVED, schema_behind, upgrade
from openspine.platform.storage.ports import AuditChain, StoreUnavailable
from openspine.settings import Settings, SettingsError
from openspine.synth.credentials import (
    app_token_form,
    client_assertion,
    id_token,
    user_token_form,
)
from openspine.synth.demo import (
    CREDENTIALS_FILE,
    create_demo_store,
    create_keys_and_settings,
    ensure_mesh_setup,
    has_store,
    refresh_credentials,
)

__all__ = ["main"]

err = Console(stderr=True)
#: The most web workers `demo` and `serve` start.
MAX_WORKERS = 64

DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory holding the store, its keys and settings.",
)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


def _settings(data_dir: Path, base_url: str | None = None) -> Settings:
    try:
        return Settings.for_data_dir(data_dir.resolve(), base_url=base_url)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


class _Commands(click.Group):
    """Operator-facing failures end with a one-line reason and exit status 1, not a trace."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StoreUnavailable as exc:
            raise click.ClickException(
                f"the store is unavailable ({exc}); check that it is running and reachable"
            ) from None
        except SettingsError as exc:  # e.g. a bad OPENSPINE_* value set over a data dir's
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Commands)
@click.version_option(package_name="openspine")
def main() -> None:
    """OpenSpine: an open-source national health information exchange."""


@main.command()
@DATA_DIR
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--patients", default=10_000, show_default=True, type=click.IntRange(0))
@click.option("--seed", default=20261123, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, MAX_WORKERS))
@click.option(
    "--mesh-sandbox",
    is_flag=True,
    help="MESH sandbox mode: DELETE /admin/reset, mesh-client's test mailboxes and shared key.",
)
@click.option(
    "--store-url",
    envvar="OPENSPINE_STORE",
    help="Where a new demo store lives (default: SQLite in DATA_DIR), e.g. postgresql://…",
)
def demo(
    data_dir: Path,
    host: str,
    port: int,
    patients: int,
    seed: int,
    workers: int,
    mesh_sandbox: bool,
    store_url: str | None,
) -> None:
    """Create a demo store in DATA_DIR if there is none, then serve it."""
    data_dir = data_dir.resolve()
    if mesh_sandbox:
        os.environ["OPENSPINE_MESH_SANDBOX"] = "true"
        os.environ["OPENSPINE_MESH_SHARED_KEY"] = SANDBOX_SHARED_KEY
    base_url = f"http://{host}:{port}"
    if not has_store(data_dir):
        settings = create_keys_and_settings(data_dir, store_url).with_base_url(base_url)
        loaded = asyncio.run(_load_demo(data_dir, settings, patients, seed))
        err.print(f"Loaded {loaded:,} patients into {data_dir}")
    else:
        # A demo store made by an earlier version is brought up to date here; `serve` leaves
        # that to the operator (`openspine migrate`).
        store = _settings(data_dir).store_url
        behind = schema_behind(store)
        if behind is not None:
            err.print(f"Migrating the demo store from {behind[0] or 'no revision'} to {behind[1]}")
            upgrade(store)
    ensure_mesh_setup(data_dir)
    settings = _settings(data_dir, base_url)
    refresh_credentials(data_dir, settings)
    err.print(f"Demo credentials: {data_dir / CREDENTIALS_FILE}")
    _serve(data_dir, host, port, workers)


async def _load_demo(data_dir: Path, settings: Settings, size: int, seed: int) -> int:
    platform = build_platform(settings)
    await platform.store.start()
    try:
        with _progress() as progress:
            task = progress.add_task("Loading patients", total=size + 6)
            started = time.perf_counter()
            loaded = await create_demo_store(
                data_dir,
                settings,
                platform.store,
                size=size,
                seed=seed,
                progress=lambda n: progress.advance(task, n),
            )
        rate = loaded / max(time.perf_counter() - started, 1e-9)
        err.print(f"Load rate: {rate:,.0f} patients/s")
        return loaded
    finally:
        await platform.store.close()


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, or the machine's), from 1 to 64."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity outside Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))


@main.command()
@DATA_DIR
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--workers",
    default=available_cores,
    show_default="one per available core",
    type=click.IntRange(1, MAX_WORKERS),
    help="Web worker processes; one per core is the measured best (ADR 0014).",
)
def serve(data_dir: Path, host: str, port: int, workers: int) -> None:
    """Serve an existing store."""
    data_dir = data_dir.resolve()
    settings = _settings(data_dir, f"http://{host}:{port}")
    if (data_dir / CREDENTIALS_FILE).is_file():
        ensure_mesh_setup(data_dir)
        settings = _settings(data_dir, f"http://{host}:{port}")
        refresh_credentials(data_dir, settings)
    _serve(data_dir, host, port, workers)


def _announce_when_ready(base_url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/_status", timeout=1.0).status_code == 200:
                click.echo(base_url, nl=True)
                sys.stdout.flush()
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    err.print("[red]OpenSpine did not become ready within 60 s[/red]")


def _serve(data_dir: Path, host: str, port: int, workers: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    from openspine.platform.storage.ports import StoreUnavailable
    from openspine.platform.storage.sqlite_writer import WriterSupervisor

    base_url = f"http://{host}:{port}"
    os.environ["OPENSPINE_DATA_DIR"] = str(data_dir)
    os.environ["OPENSPINE_PUBLIC_BASE_URL"] = base_url
    settings = _settings(data_dir, base_url).with_env_overrides(os.environ)
    behind = schema_behind(settings.store_url)
    if behind is not None:
        current, latest = behind
        if current is None or current < OLDEST_SERVED:
            raise click.ClickException(
                f"the store's schema is at {current or 'no revision'}; this version needs at "
                f"least {OLDEST_SERVED}: run `openspine migrate` (docs/operations.md)"
            )
        err.print(
            f"[yellow]The store's schema is at {current}, the latest is {latest}: it is served "
            "as it is; run `openspine migrate` for what the newer migrations bring "
            "(docs/operations.md).[/yellow]"
        )
    writer = None
    if settings.store_url.startswith("sqlite:///"):
        # One writer process commits every worker's writes together (ADR 0015); started
        # again if it dies (ADR 0017).
        try:
            writer = WriterSupervisor(
                Path(settings.store_url.removeprefix("sqlite:///")),
                synchronous=settings.sqlite_synchronous,
                max_batch=settings.writer_max_batch,
            )
        except StoreUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        os.environ["OPENSPINE_SQLITE_WRITER_SOCKET"] = str(writer.socket_path)
    # The workers share their request metrics here, so that a scrape of any one of them counts
    # the whole server (ADR 0018); made afresh for each run, only the serving user may read it.
    metrics_dir = Path(tempfile.mkdtemp(prefix="openspine-metrics-"))
    os.environ["OPENSPINE_METRICS_DIR"] = str(metrics_dir)
    threading.Thread(target=_announce_when_ready, args=(base_url,), daemon=True).start()
    try:
        Granian(
            "openspine.asgi:app_from_env",
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            workers=workers,
            factory=True,
            log_access=False,
            backlog=2048,
        ).serve()
    finally:
        os.environ.pop("OPENSPINE_METRICS_DIR", None)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        if writer is not None:
            os.environ.pop("OPENSPINE_SQLITE_WRITER_SOCKET", None)
            writer.stop()


@main.command()
@DATA_DIR
@click.option("--app", "client_id", help="Client id of a demo application.")
@click.option("--user", "user_id", help="User id of a demo user.")
@click.option("--role-profile", "role_profile_id", help="The user's role profile id.")
def token(
    data_dir: Path, client_id: str | None, user_id: str | None, role_profile_id: str | None
) -> None:
    """Print an access token, obtained through the platform's own token issuing."""
    data_dir = data_dir.resolve()
    creds_path = data_dir / CREDENTIALS_FILE
    if not creds_path.is_file():
        raise click.ClickException(f"{creds_path} not found: run `openspine demo` first")
    creds = json.loads(creds_path.read_text())
    if user_id is not None:
        if role_profile_id is None:
            raise click.UsageError("--user needs --role-profile")
        app = next(a for a in creds["apps"] if "user-restricted" in a["access_modes"])
    elif client_id is not None:
        found = [a for a in creds["apps"] if a["client_id"] == client_id]
        if not found:
            raise click.ClickException(f"no demo application {client_id!r}")
        app = found[0]
    else:
        raise click.UsageError("give --app CLIENT_ID, or --user USER_ID --role-profile ID")
    settings = _settings(data_dir, creds["base_url"])
    key = load_private_key(data_dir / app["private_key_file"])
    assertion = client_assertion(key, app["kid"], app["client_id"], settings.token_url)
    if user_id is not None:
        idp = creds["identity_provider"]
        subject = id_token(
            load_private_key(data_dir / idp["private_key_file"]),
            idp["kid"],
            issuer=idp["issuer"],
            client_id=app["client_id"],
            user_id=user_id,
            role_profile_id=str(role_profile_id),
        )
        form = user_token_form(assertion, subject)
    else:
        form = app_token_form(assertion)
    click.echo(asyncio.run(_issue(settings, form)))


async def _issue(settings: Settings, form: dict[str, str]) -> str:
    platform = build_platform(settings)
    await platform.store.start()
    try:
        issued = await platform.issuer.issue(form, AuditContext(None, None))
    except SpineError as exc:
        raise click.ClickException(f"{exc.code}: {exc.diagnostics or exc.display}") from None
    finally:
        await platform.store.close()
    return issued.access_token


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@DATA_DIR
def audit_verify(data_dir: Path) -> None:
    """Check both audit chains whole (ADR 0025); exit 1 naming the first bad event of each."""
    settings = _settings(data_dir)
    broken = False
    for chain, result in asyncio.run(_verify(settings)):
        if isinstance(result, StoreUnavailable):
            broken = True
            err.print(f"[red]audit chain {chain} could not be read: {result}[/red]")
            continue
        if result.ok:
            click.echo(f"audit chain {chain} intact: {result.checked} events verified")
            continue
        broken = True
        err.print(
            f"[red]audit chain {chain} broken at event {result.first_bad_seq}"
            f"{' (' + result.first_bad_event + ')' if result.first_bad_event else ''}: "
            f"{result.problem}[/red] ({result.checked} events verified before it)"
        )
    if broken:
        sys.exit(1)


@main.group()
def pds() -> None:
    """Operator actions on the national patient index (audited, with change events)."""


@pds.command("merge")
@DATA_DIR
@click.argument("superseded")
@click.argument("survivor")
@click.option("--operator", required=True, help="Who is doing this (recorded in the audit).")
def pds_merge(data_dir: Path, superseded: str, survivor: str, operator: str) -> None:
    """Mark SUPERSEDED as a duplicate of SURVIVOR: reads and searches resolve to SURVIVOR."""
    _operate(data_dir, lambda p, c: p.pds.merge(superseded, survivor, c, operator))
    click.echo("merged: the superseded record now resolves to the survivor")


@pds.command("invalidate")
@DATA_DIR
@click.argument("nhs_number")
@click.option("--operator", required=True, help="Who is doing this (recorded in the audit).")
def pds_invalidate(data_dir: Path, nhs_number: str, operator: str) -> None:
    """Invalidate a record created in error: it is no longer read or found."""
    _operate(data_dir, lambda p, c: p.pds.invalidate(nhs_number, c, operator))
    click.echo("invalidated")


def _operate(data_dir: Path, action: Callable[[Platform, AuditContext], Awaitable[None]]) -> None:
    async def run() -> None:
        platform = build_platform(_settings(data_dir))
        await platform.store.start()
        try:
            await action(platform, AuditContext(str(uuid.uuid4()), None))
        finally:
            await platform.store.close()

    try:
        asyncio.run(run())
    except SpineError as exc:
        err.print(f"[red]{exc.code}: {exc.diagnostics or exc.display}[/red]")
        sys.exit(1)


async def _verify(
    settings: Settings,
) -> list[tuple[AuditChain, VerificationResult | StoreUnavailable]]:
    platform = build_platform(settings)
    await platform.store.start()
    try:
        results: list[tuple[AuditChain, VerificationResult | StoreUnavailable]] = []
        for chain in AuditChain:
            try:
                results.append((chain, await verify_chain(platform.store, chain)))
            except StoreUnavailable as exc:  # e.g. a SQLite store's access file is gone
                results.append((chain, exc))
        return results
    finally:
        await platform.store.close()


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A store made by `openspine demo`.",
)
@click.option(
    "--store",
    "store_url",
    default=None,
    envvar="OPENSPINE_STORE",
    help="Store URL: sqlite:///path or postgresql://… (default: $OPENSPINE_STORE).",
)
def migrate(data_dir: Path | None, store_url: str | None) -> None:
    """Upgrade the store's schema to the latest migration."""
    if data_dir is not None:
        store_url = _settings(data_dir).store_url
    if not store_url:
        raise click.UsageError("give --data-dir or --store (or set OPENSPINE_STORE)")
    upgrade(store_url)
    click.echo("store schema is at the latest migration")


if __name__ == "__main__":
    main()
