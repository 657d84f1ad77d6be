"""The composition root: ``create_app(settings)`` builds everything; importing has no effects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from openspine import __version__
from openspine.directory import routes as directory_routes
from openspine.directory.service import DirectoryService
from openspine.eps import routes as eps_routes
from openspine.eps.jobs import eps_jobs
from openspine.eps.service import EpsService
from openspine.mesh import routes as mesh_routes
from openspine.mesh.blobs import BlobStore
from openspine.mesh.jobs import mesh_jobs
from openspine.mesh.mailboxes import SANDBOX_MAILBOXES, SANDBOX_WORKFLOWS, register
from openspine.mesh.passwords import PasswordSeal
from openspine.mesh.service import MeshError, MeshService, MeshSettings
from openspine.pds import routes as pds_routes
from openspine.pds.fhir import capability_statement
from openspine.pds.service import PdsService
from openspine.platform import health
from openspine.platform.http import EXCEPTION_HANDLERS, SpineApp
from openspine.platform.middleware import RequestMiddleware
from openspine.platform.observability import LogEvent, Metrics, log_event, publish_metrics
from openspine.platform.openapi import QueryParameters, openapi_document
from openspine.platform.routing import SpineRoute
from openspine.platform.security import routes as oauth_routes
from openspine.platform.security.keys import load_private_key, public_jwk
from openspine.platform.security.tokens import TokenIssuer, TokenVerifier
from openspine.platform.storage.factory import open_store
from openspine.platform.storage.ports import Store
from openspine.settings import Settings

__all__ = ["QUERY_PARAMETERS", "Platform", "build_platform", "create_app"]

#: The largest request body of any route: a MESH chunk (100 MiB) and its headers' slack.
#: Each route enforces its own smaller limit (PDS: 256 KiB; forms: Starlette's defaults).
MAX_BODY_BYTES = 101 * 1024 * 1024
#: The query parameters each service declares for its routes (for the OpenAPI document).
QUERY_PARAMETERS: QueryParameters = {
    **pds_routes.QUERY_PARAMETERS,
    **eps_routes.QUERY_PARAMETERS,
    **directory_routes.QUERY_PARAMETERS,
    **mesh_routes.QUERY_PARAMETERS,
}


@dataclass(frozen=True, slots=True)
class Platform:
    """The services of one process, wired to one store (shared by the app and the CLI)."""

    settings: Settings
    store: Store
    directory: DirectoryService
    pds: PdsService
    issuer: TokenIssuer
    verifier: TokenVerifier
    jwks: dict[str, object]
    eps: EpsService
    mesh: MeshService | None = None


def build_platform(settings: Settings) -> Platform:
    store = open_store(
        settings.store_url,
        max_batch=settings.writer_max_batch,
        sqlite_synchronous=settings.sqlite_synchronous,
        sqlite_writer_socket=settings.sqlite_writer_socket,
        pool_size=settings.postgres_pool_size,
    )
    directory = DirectoryService(store)
    signing_key = load_private_key(settings.token_signing_key_file)
    audience = settings.public_base_url.rstrip("/")
    issuer = TokenIssuer(
        token_url=settings.token_url,
        audience=audience,
        signing_key=signing_key,
        idp_issuer=settings.idp_issuer,
        idp_jwks=json.loads(settings.idp_jwks_file.read_text()),
        directory=directory,
        store=store,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    verifier = TokenVerifier(
        public_key=signing_key.public_key(), issuer=settings.token_url, audience=audience
    )
    mesh = None
    if settings.mesh_enabled:
        assert settings.mesh_shared_key is not None
        assert settings.mesh_seal_key_file is not None
        assert settings.blob_dir is not None
        mesh = MeshService(
            store,
            BlobStore(settings.blob_dir),
            PasswordSeal.from_file(settings.mesh_seal_key_file),
            MeshSettings(
                shared_key=settings.mesh_shared_key.reveal().encode(),
                sandbox=settings.mesh_sandbox,
                inbox_expiry=timedelta(days=settings.mesh_inbox_expiry_days),
                retention=timedelta(days=settings.mesh_retention_days),
            ),
        )
    return Platform(
        mesh=mesh,
        eps=EpsService(store, expiry_days=settings.eps_expiry_days),
        settings=settings,
        store=store,
        directory=directory,
        pds=PdsService(store, base_url=audience + pds_routes.BASE_PATH),
        issuer=issuer,
        verifier=verifier,
        jwks={"keys": [public_jwk(signing_key)]},
    )


def create_app(settings: Settings) -> SpineApp:
    platform = build_platform(settings)
    metrics = Metrics(settings.metrics_dir)
    base_url = settings.public_base_url.rstrip("/")

    @contextlib.asynccontextmanager
    async def lifespan(app: SpineApp) -> AsyncIterator[None]:
        await platform.store.start()
        # Keys of a bulk load that stopped before its merge (ADR 0014): searchable from now on.
        await platform.store.merge_pending_index()
        interval, lead = settings.mesh_job_interval_seconds, platform.store.lead
        jobs = [asyncio.create_task(eps_jobs(platform.eps, interval, lead))]
        if metrics.shared:
            jobs.append(asyncio.create_task(publish_metrics(metrics)))
        if platform.mesh is not None:
            if settings.mesh_sandbox:
                await register(
                    platform.store,
                    platform.mesh.seal,
                    SANDBOX_MAILBOXES,
                    SANDBOX_WORKFLOWS,
                    "MESH sandbox mailboxes and workflows",
                )
            jobs.append(asyncio.create_task(mesh_jobs(platform.mesh, interval, lead)))
        log_event(LogEvent.STARTED, version=__version__)
        try:
            yield
        finally:
            for job in jobs:
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job
            try:
                metrics.publish()  # this worker's last requests count after it has gone
            except OSError as exc:
                log_event(LogEvent.METRICS_NOT_SHARED, logging.WARNING, error=type(exc).__name__)
            if platform.mesh is not None:
                platform.mesh.close()
            await platform.store.close()
            log_event(LogEvent.STOPPED)

    routes = [
        *health.routes(platform.store, metrics, __version__),
        *oauth_routes.routes(platform.issuer, platform.jwks),
        *pds_routes.routes(platform.pds, capability_statement(base_url, __version__)),
        *(mesh_routes.routes(platform.mesh) if platform.mesh is not None else []),
        *directory_routes.routes(platform.store, base_url),
        *eps_routes.routes(platform.eps),
    ]

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    routes.append(SpineRoute("/openapi.json", openapi_json))
    openapi = json.dumps(
        openapi_document(routes, version=__version__, query_parameters=QUERY_PARAMETERS)
    ).encode()
    app = SpineApp(
        routes=routes,
        middleware=[
            Middleware(
                RequestMiddleware,
                metrics=metrics,
                request_id_required=[f"{pds_routes.BASE_PATH}/Patient", eps_routes.BASE_PATH],
                max_body_bytes=MAX_BODY_BYTES,
            )
        ],
        exception_handlers={**EXCEPTION_HANDLERS, MeshError: mesh_routes.mesh_error_handler},
        lifespan=lifespan,
    )
    app.state.platform = platform
    app.state.verifier = platform.verifier
    return app
