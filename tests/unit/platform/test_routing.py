"""The router: only the routes of the path's first segment are tried, in declared order, and
function endpoints' errors reach the application's handlers without a second exception layer."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from openspine.platform.errors import ResourceNotFound
from openspine.platform.http import EXCEPTION_HANDLERS, SpineApp
from openspine.platform.routing import SpineRoute, SpineRouter, first_segment, route_path

pytestmark = pytest.mark.anyio


def answer(text: str) -> Any:
    async def endpoint(request: Request) -> Response:
        params = ",".join(f"{k}={v}" for k, v in request.path_params.items())
        return PlainTextResponse(f"{text} {params}".strip())

    return endpoint


class Unhandled(Exception):
    pass


async def fails_handled(request: Request) -> Response:
    raise ResourceNotFound("no such thing")


async def fails_unhandled(request: Request) -> Response:
    raise Unhandled()


ROUTES = [
    SpineRoute("/a/x", answer("a-x")),
    SpineRoute("/{anything}/x", answer("param-first")),
    SpineRoute("/a/{id}", answer("a-id")),
    SpineRoute("/a/{id}", answer("a-id-post"), methods=["POST"]),
    SpineRoute("/b/y", answer("b-y")),
    SpineRoute("/b/slash/", answer("b-slash")),
    SpineRoute("/", answer("root")),
    SpineRoute("/c/handled", fails_handled),
    SpineRoute("/c/unhandled", fails_unhandled),
]


def app() -> SpineApp:
    return SpineApp(routes=ROUTES, middleware=[], exception_handlers=EXCEPTION_HANDLERS)


@pytest.mark.parametrize(
    ("path", "segment"),
    [
        ("/", ""),
        ("/a", "a"),
        ("/a/", "a"),
        ("/personal-demographics/FHIR/R4/Patient", "personal-demographics"),
    ],
)
def test_first_segment(path: str, segment: str) -> None:
    assert first_segment(path) == segment


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        ("/a/x", "", "/a/x"),
        ("/api/a/x", "/api", "/a/x"),
        ("/api", "/api", ""),
        ("/apiary/a", "/api", "/apiary/a"),  # a prefix of a segment is not a root
        ("/a/x", "/api", "/a/x"),
    ],
)
def test_route_path_is_the_path_below_the_root(path: str, root: str, expected: str) -> None:
    assert route_path({"type": "http", "path": path, "root_path": root}) == expected


async def test_a_mounted_app_routes_below_its_root_path() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app(), root_path="/api"), base_url="http://t"
    ) as c:
        response = await c.get("/api/a/7")
    assert (response.status_code, response.text) == (200, "a-id id=7")


def test_candidates_keep_order_and_include_parameter_first_routes() -> None:
    router = SpineRouter(ROUTES)
    paths = [getattr(r, "path", None) for r in router.candidates("/a/x")]
    assert paths == ["/a/x", "/{anything}/x", "/a/{id}", "/a/{id}"]
    assert [getattr(r, "path", None) for r in router.candidates("/b/y")] == [
        "/{anything}/x",
        "/b/y",
        "/b/slash/",
    ]
    assert [getattr(r, "path", None) for r in router.candidates("/zzz/x")] == ["/{anything}/x"]


@pytest.mark.parametrize(
    ("method", "path", "status", "text"),
    [
        ("GET", "/a/x", 200, "a-x"),  # declared first: wins over the parameter routes
        ("GET", "/z/x", 200, "param-first anything=z"),
        ("GET", "/a/42", 200, "a-id id=42"),
        ("POST", "/a/42", 200, "a-id-post id=42"),
        ("GET", "/b/y", 200, "b-y"),
        ("GET", "/", 200, "root"),
    ],
)
async def test_a_request_reaches_the_route_starlette_would_choose(
    method: str, path: str, status: int, text: str
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app()), base_url="http://t"
    ) as c:
        response = await c.request(method, path)
    assert (response.status_code, response.text) == (status, text)


async def test_what_no_candidate_matches_is_answered_as_starlette_answers_it() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app()), base_url="http://t"
    ) as c:
        missing = await c.get("/nowhere/at/all")
        wrong_method = await c.delete("/b/y")
        redirected = await c.get("/b/slash", follow_redirects=False)
    assert missing.status_code == 404
    assert json.loads(missing.content)["resourceType"] == "OperationOutcome"
    assert wrong_method.status_code == 405
    assert "GET" in wrong_method.headers["allow"]
    assert redirected.status_code == 307
    assert redirected.headers["location"].endswith("/b/slash/")


async def test_a_route_added_later_is_found() -> None:
    application = app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://t"
    ) as c:
        assert (await c.get("/late/route")).status_code == 404
        application.router.routes.append(SpineRoute("/late/route", answer("late")))
        assert (await c.get("/late/route")).text == "late"


async def test_an_endpoints_error_goes_to_the_applications_handler() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app()), base_url="http://t"
    ) as c:
        response = await c.get("/c/handled")
    assert response.status_code == 404
    outcome = json.loads(response.content)
    assert outcome["issue"][0]["diagnostics"] == "no such thing"


async def test_an_error_without_a_handler_is_not_swallowed() -> None:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        with pytest.raises(Unhandled):
            await c.get("/c/unhandled")


def test_a_sync_endpoint_is_refused() -> None:
    def sync_endpoint(request: Request) -> Response:
        return PlainTextResponse("no")

    with pytest.raises(TypeError):
        SpineRoute("/sync", sync_endpoint)  # type: ignore[arg-type]
