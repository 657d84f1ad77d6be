"""The OpenAPI document is generated from the route table: nothing served is left out."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from openspine.app import QUERY_PARAMETERS, create_app
from openspine.platform.http import SecuredRoute
from openspine.platform.openapi import openapi_document
from openspine.settings import Settings


def _document(settings: Settings) -> tuple[Any, dict[str, Any]]:
    app = create_app(settings)
    return app, openapi_document(app.routes, version="test", query_parameters=QUERY_PARAMETERS)


def test_every_schema_route_and_method_is_described(demo_settings: Settings) -> None:
    app, document = _document(demo_settings)
    for route in app.routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        for method in (route.methods or set()) - {"HEAD"}:
            operation = document["paths"][route.path_format][method.lower()]
            names = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert names == set(route.param_convertors), route.path
            if isinstance(route, SecuredRoute):
                assert operation["security"] == [{"bearer": []}]
                if route.permission is not None:
                    assert operation["x-openspine-permission"] == route.permission.value


def test_service_routes_declare_their_request_id_bodies_and_queries(
    demo_settings: Settings,
) -> None:
    _, document = _document(demo_settings)
    patch = document["paths"]["/personal-demographics/FHIR/R4/Patient/{nhs_number}"]["patch"]
    headers = {p["name"] for p in patch["parameters"] if p["in"] == "header"}
    assert headers == {"X-Request-ID", "If-Match"}
    assert "application/json-patch+json" in patch["requestBody"]["content"]
    search = document["paths"]["/personal-demographics/FHIR/R4/Patient"]["get"]
    queries = {p["name"] for p in search["parameters"] if p["in"] == "query"}
    assert {"family", "given", "birthdate", "_fuzzy-match", "_max-results"} <= queries
    assert "/openapi.json" in document["paths"]
