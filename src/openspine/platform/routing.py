"""Routing without the per-request costs Starlette adds for generality (ADR 0017).

Starlette's router tries every route's regular expression in turn, and wraps every function
endpoint in a second exception layer with its own ``send`` wrapper (the application's
``ExceptionMiddleware`` already has one). With 41 routes an EPS request was matched after about
35 failed expressions, and every request went through three ``send`` wrappers.

* :class:`SpineRouter` keeps the routes whose path begins with each literal first segment
  (``personal-demographics``, ``messageexchange`` …), in their declared order, and tries only
  those; a route whose first segment is a parameter is a candidate for every path. What it does
  not match itself (404, 405, the trailing-slash redirect, lifespan) is Starlette's, unchanged.
* :class:`SpineRoute` is a Starlette route whose async endpoint is called directly; an exception
  it raises goes to the handler the application registered for it (the same lookup Starlette
  makes), and anything without a handler, or raised while the response streams, goes on to the
  ``ExceptionMiddleware`` and the request layer as before.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["SpineRoute", "SpineRouter", "first_segment", "route_path"]

Endpoint = Callable[[Request], Awaitable[Response]]


def first_segment(path: str) -> str:
    """``/personal-demographics/FHIR/R4/Patient`` → ``personal-demographics``; ``/`` → ``""``."""
    end = path.find("/", 1)
    return path[1:] if end < 0 else path[1:end]


def route_path(scope: Scope) -> str:
    """The path routes match against: below ``root_path`` when the app is mounted (as Starlette
    computes it for each route it tries)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


def _literal_first_segment(route: BaseRoute) -> str | None:
    """The route's first path segment when it is literal; ``None`` when it may be anything."""
    path = getattr(route, "path", None)
    if not isinstance(path, str) or not path.startswith("/"):
        return None
    segment = first_segment(path)
    return None if "{" in segment else segment


class SpineRouter(Router):
    """Starlette's router, trying only the routes that can match the path's first segment."""

    _indexed = -1  # how many routes the index holds
    _by_segment: dict[str, tuple[BaseRoute, ...]]
    _anywhere: tuple[BaseRoute, ...]

    def _index(self) -> None:
        segments = [_literal_first_segment(route) for route in self.routes]
        self._by_segment = {
            key: tuple(r for r, s in zip(self.routes, segments, strict=True) if s in (key, None))
            for key in {s for s in segments if s is not None}
        }
        self._anywhere = tuple(r for r, s in zip(self.routes, segments, strict=True) if s is None)
        self._indexed = len(self.routes)

    def candidates(self, path: str) -> tuple[BaseRoute, ...]:
        """The routes that may match ``path``, in their declared order."""
        if self._indexed != len(self.routes):  # built on first use; again if routes are added
            self._index()
        return self._by_segment.get(first_segment(path), self._anywhere)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        if "router" not in scope:
            scope["router"] = self
        path = route_path(scope)
        partial: tuple[BaseRoute, Scope] | None = None
        for route in self.candidates(path):
            regex = getattr(route, "path_regex", None)
            if regex is not None and regex.match(path) is None:
                continue  # what matches() would find first, without its per-route preamble
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial = (route, child_scope)
        if partial is not None:  # the path is right, the method is not: 405 (Starlette's)
            scope["route"] = partial[0]
            scope.update(partial[1])
            await partial[0].handle(scope, receive, send)
            return
        await super().app(scope, receive, send)  # 404 or a trailing-slash redirect


def _handler_for(scope: Scope, exc: Exception) -> Callable[..., Any] | None:
    """The application's handler for ``exc``, found as Starlette's own layer finds it."""
    handlers, status_handlers = scope.get("starlette.exception_handlers", ({}, {}))
    if isinstance(exc, HTTPException) and exc.status_code in status_handlers:
        handler: Callable[..., Any] = status_handlers[exc.status_code]
        return handler
    for cls in type(exc).__mro__:
        if cls in handlers:
            found: Callable[..., Any] = handlers[cls]
            return found
    return None


def endpoint_app(endpoint: Endpoint) -> ASGIApp:
    """An ASGI app calling ``endpoint(request)``; its errors answered by the app's handlers."""
    if not inspect.iscoroutinefunction(endpoint):
        raise TypeError(f"{endpoint!r} must be an async function")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = _handler_for(scope, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
            exc.__traceback__ = None  # a reused exception instance must not grow its traceback
        await response(scope, receive, send)

    return app


class SpineRoute(Route):
    """A Starlette route whose async endpoint runs without a second exception layer."""

    def __init__(
        self,
        path: str,
        endpoint: Endpoint,
        *,
        methods: Collection[str] | None = None,
        name: str | None = None,
        include_in_schema: bool = True,
    ) -> None:
        super().__init__(
            path,
            endpoint,
            methods=list(methods) if methods is not None else None,
            name=name,
            include_in_schema=include_in_schema,
        )
        self.app = endpoint_app(endpoint)
