"""HTTP glue shared by every service: FHIR responses, secured routes, the error handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Lifespan

from openspine.platform.audit.events import AuditContext
from openspine.platform.errors import (
    Forbidden,
    InvalidMethod,
    PayloadTooLarge,
    ResourceNotFound,
    ServiceUnavailable,
    SpineError,
    UnsupportedService,
)
from openspine.platform.routing import SpineRoute, SpineRouter
from openspine.platform.security.principal import Principal
from openspine.platform.security.rbac import Permission
from openspine.platform.storage.ports import StoreUnavailable

if TYPE_CHECKING:
    from openspine.platform.security.tokens import TokenVerifier

__all__ = [
    "FHIR_JSON",
    "FhirResponse",
    "SecuredRoute",
    "SpineApp",
    "audit_context",
    "fhir_response",
    "http_exception_handler",
    "read_body",
    "spine_error_handler",
    "store_unavailable_handler",
]

FHIR_JSON = "application/fhir+json"

SecuredHandler = Callable[[Request, Principal], Awaitable[Response]]


class SpineApp(Starlette):
    """Starlette with our request layer outermost and only the exception handlers below it.

    Starlette would wrap every request in two more layers, each wrapping ``send`` again: its
    server-error middleware (our request layer already turns anything unexpected into a 500
    OperationOutcome) and its body-size middleware (our request layer enforces the cap, with
    an OperationOutcome, not plain text). ADR 0016 measured what they cost on the read path.
    Its router tries only the routes of the path's first segment (``SpineRouter``, ADR 0017).
    """

    def __init__(
        self,
        *,
        routes: Sequence[BaseRoute],
        middleware: Sequence[Middleware],
        exception_handlers: Mapping[Any, Callable[[Request, Exception], Awaitable[Response]]],
        lifespan: Lifespan[Any] | None = None,
    ) -> None:
        super().__init__(
            routes=routes,
            middleware=middleware,
            exception_handlers=exception_handlers,
            lifespan=lifespan,
        )
        self.router = SpineRouter(list(routes), lifespan=lifespan)

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = ExceptionMiddleware(self.router, handlers=dict(self.exception_handlers))
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


_CONTENT_TYPE = (b"content-type", FHIR_JSON.encode())
_SET_HERE = frozenset({"content-type", "content-length"})


class FhirResponse(Response):
    """A FHIR JSON body, its headers built directly (ADR 0018).

    Starlette's ``Response`` lower-cases and scans every header of every response to decide
    whether to add the length and type; ours always add both, and the few headers routes pass
    (ETag, Location, Retry-After) are encoded as they are. A response that sets its own type
    or length goes through Starlette's rules unchanged.
    """

    media_type = FHIR_JSON

    def __init__(
        self, body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        if (headers and not _SET_HERE.isdisjoint(k.lower() for k in headers)) or (
            status < 200 or status in (204, 304)
        ):
            super().__init__(body, status_code=status, headers=headers)
            return
        self.status_code = status
        self.background = None
        self.body = body
        raw = [(b"content-length", b"%d" % len(body)), _CONTENT_TYPE]
        if headers:
            raw.extend(
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
            )
        self.raw_headers = raw


def fhir_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return FhirResponse(body, status, headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` (never read whole).

    The application's own cap is a MESH chunk (101 MiB); routes with small bodies use this.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def audit_context(request: Request) -> AuditContext:
    state = request.scope.get("state", {})
    return AuditContext(state.get("request_id"), state.get("correlation_id"))


class SecuredRoute(SpineRoute):
    """A route that authenticates its caller and checks one declared permission first.

    ``permission=None`` means any authenticated caller. The declared permission is kept on the
    route (``route.permission``) so that the authorisation matrix can be generated from it.
    """

    def __init__(
        self,
        path: str,
        handler: SecuredHandler,
        *,
        permission: Permission | None,
        methods: Sequence[str] = ("GET",),
        name: str | None = None,
    ) -> None:
        self.permission = permission

        async def endpoint(request: Request) -> Response:
            verifier: TokenVerifier = request.app.state.verifier
            principal = verifier.verify(request.headers.get("authorization"))
            if permission is not None and not principal.can(permission):
                raise Forbidden(f"Your role does not permit this action ({permission.value})")
            return await handler(request, principal)

        super().__init__(path, endpoint, methods=methods, name=name or handler.__name__)


async def spine_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SpineError)
    return fhir_response(exc.outcome(), exc.status, exc.headers)


async def store_unavailable_handler(request: Request, exc: Exception) -> Response:
    error = ServiceUnavailable(
        "The data store is unavailable; retry later", headers={"Retry-After": "5"}
    )
    return fhir_response(error.outcome(), error.status, error.headers)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: SpineError
    if exc.status_code == 404:
        error = ResourceNotFound("No such route")
    elif exc.status_code == 405:
        error = InvalidMethod("Method not allowed on this route")
    elif exc.status_code == 413:
        error = PayloadTooLarge()
    else:
        error = UnsupportedService(exc.detail if isinstance(exc.detail, str) else None)
    headers: dict[str, Any] = dict(exc.headers or {})
    return fhir_response(error.outcome(), exc.status_code, headers)


EXCEPTION_HANDLERS: Mapping[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    SpineError: spine_error_handler,
    StoreUnavailable: store_unavailable_handler,
    HTTPException: http_exception_handler,
}
