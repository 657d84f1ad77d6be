"""Health and metrics endpoints, open to the load balancer and the monitoring system."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from openspine.platform.observability import Metrics
from openspine.platform.routing import SpineRoute
from openspine.platform.storage.ports import Store, StoreUnavailable

__all__ = ["routes"]


def routes(store: Store, metrics: Metrics, version: str) -> list[BaseRoute]:
    async def status(request: Request) -> Response:
        try:
            await store.ping()
            checks, code = {"store": "pass"}, 200
        except StoreUnavailable:
            checks, code = {"store": "fail"}, 503
        body = {"status": "pass" if code == 200 else "fail", "version": version, "checks": checks}
        return Response(orjson.dumps(body), status_code=code, media_type="application/json")

    async def ping(request: Request) -> Response:
        return Response(
            orjson.dumps({"status": "pass", "version": version}), media_type="application/json"
        )

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return [
        SpineRoute("/_status", status, methods=["GET"]),
        SpineRoute("/_ping", ping, methods=["GET"]),
        SpineRoute("/metrics", prometheus, methods=["GET"]),
    ]
