"""The outermost request layer, as one pure ASGI middleware (no per-request task or copy).

* X-Request-ID: validated as a UUID when present, required on service routes (400
  ``MISSING_VALUE`` / ``INVALID_VALUE`` as PDS answers), echoed on the response.
* X-Correlation-ID: echoed as given.
* The application's cap on a request body: a declared length above it is a 413 at once, before
  any routing; a body of undeclared length is counted as it is read, and a 413 when it passes.
  Routes with small bodies refuse far less, themselves (``http.read_body``).
* Timing and Prometheus metrics by route template.
* Anything unexpected: a generic 500 OperationOutcome, never a trace; the log names the route
  template and the exception class only.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openspine.platform.errors import (
    InternalServerError,
    InvalidValue,
    MissingValue,
    PayloadTooLarge,
    SpineError,
)
from openspine.platform.observability import LogEvent, Metrics, log_event

__all__ = ["RequestMiddleware"]

_UUID = re.compile(
    rb"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_MAX_CORRELATION = 200


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        request_id_required: Sequence[str],
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.required_prefixes = tuple(request_id_required)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = correlation_id = length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value
            elif name == b"x-correlation-id":
                correlation_id = value[:_MAX_CORRELATION]
            elif name == b"content-length":
                length = int(value) if value.isdigit() else None  # else: counted as read
        echo: list[tuple[bytes, bytes]] = []
        if correlation_id is not None:
            echo.append((b"x-correlation-id", correlation_id))
        status = 500
        response_started = False

        async def send_with_ids(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                if echo:
                    message["headers"] = [*message.get("headers", ()), *echo]
            await send(message)

        try:
            error = self._check_request_id(scope["path"], request_id)
            if error is None and length is not None and length > self.max_body_bytes:
                error = PayloadTooLarge()
            if error is not None:
                await self._send_error(send_with_ids, error)
                return
            if request_id is not None:
                echo.append((b"x-request-id", request_id))
            state = scope.setdefault("state", {})
            state["request_id"] = request_id.decode() if request_id else None
            state["correlation_id"] = (
                correlation_id.decode("latin-1") if correlation_id is not None else None
            )
            if length is None:  # a body of undeclared length (chunked) is counted as it comes
                receive = _counting(receive, self.max_body_bytes)
            await self.app(scope, receive, send_with_ids)
        except SpineError as exc:  # raised outside a route's handlers, e.g. by _counting
            if not response_started:
                await self._send_error(send_with_ids, exc)
        except Exception as exc:
            route = getattr(scope.get("route"), "path", "unmatched")
            log_event(
                LogEvent.UNHANDLED_ERROR, logging.ERROR, route=route, error=type(exc).__name__
            )
            if not response_started:
                await self._send_error(send_with_ids, InternalServerError())
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(route, scope["method"], status, time.perf_counter() - started)

    def _check_request_id(self, path: str, request_id: bytes | None) -> SpineError | None:
        if request_id is None:
            if path.startswith(self.required_prefixes):
                return MissingValue(
                    "Invalid request with error - X-Request-ID header must be supplied to "
                    "access this resource"
                )
            return None
        if not _UUID.match(request_id):
            shown = request_id[:64].decode("latin-1")
            return InvalidValue(f"Invalid value - '{shown}' in header 'X-Request-ID'")
        return None

    @staticmethod
    async def _send_error(send: Send, error: SpineError) -> None:
        body = error.outcome()
        headers = [
            (b"content-type", b"application/fhir+json"),
            (b"content-length", str(len(body)).encode()),
        ]
        headers.extend((k.lower().encode(), v.encode()) for k, v in error.headers.items())
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _counting(receive: Receive, limit: int) -> Receive:
    size = 0

    async def receive_counted() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise PayloadTooLarge()
        return message

    return receive_counted
