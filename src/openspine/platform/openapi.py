"""An OpenAPI 3.0 description of every route the app serves, built from its route table.

The NHS publishes the contracts (../shared/reference); this document is OpenSpine's own map of
what one process answers: each path and method, its path, query and header parameters, its body
media type and how the caller authenticates. It is generated from the routes themselves, so it
cannot leave a route out. Starlette routes do not declare query parameters or bodies: each
service's routes module declares its query parameters (``QUERY_PARAMETERS``, passed in by the
composition root), and the body media types come from the table below. The property-based
fuzzing suite (tests/reliability) drives every operation from this document, and
``GET /openapi.json`` serves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from starlette.convertors import IntegerConvertor
from starlette.routing import BaseRoute, Route

from openspine.platform.http import SecuredRoute

__all__ = ["QueryParameters", "openapi_document"]

_PDS = "/personal-demographics/FHIR/R4"
_EPS = "/electronic-prescriptions/FHIR/R4"
_MESH = "/messageexchange"

QueryParameters = Mapping[tuple[str, str], Sequence[str]]

#: Request body media type of each (path prefix, method) that takes a body.
_FHIR_JSON: Final = "application/fhir+json"
_BODIES: Final[tuple[tuple[str, str, str], ...]] = (
    ("/oauth2/token", "POST", "application/x-www-form-urlencoded"),
    (f"{_PDS}/Patient", "PATCH", "application/json-patch+json"),
    (f"{_PDS}/Patient", "POST", _FHIR_JSON),
    (_EPS, "POST", _FHIR_JSON),
    (_MESH, "POST", "application/octet-stream"),
)

#: Headers every operation under a prefix requires (Spine's request id) or accepts.
_REQUEST_ID_PREFIXES: Final = (f"{_PDS}/Patient", _EPS)


def _body_type(path: str, method: str) -> str | None:
    for prefix, verb, media_type in _BODIES:
        if method == verb and path.startswith(prefix):
            return media_type
    return None


def _path_parameters(route: Route) -> list[dict[str, Any]]:
    parameters = []
    for name, convertor in route.param_convertors.items():
        schema: dict[str, Any] = (
            {"type": "integer", "minimum": 0}
            if isinstance(convertor, IntegerConvertor)
            else {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
        )
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return parameters


def _operation(
    route: Route, path: str, method: str, query_parameters: QueryParameters
) -> dict[str, Any]:
    parameters = _path_parameters(route)
    for name in query_parameters.get((path, method), ()):
        parameters.append({"name": name, "in": "query", "schema": {"type": "string"}})
    if path.startswith(_REQUEST_ID_PREFIXES):
        parameters.append(
            {
                "name": "X-Request-ID",
                "in": "header",
                "required": True,
                "schema": {"type": "string", "format": "uuid"},
            }
        )
    if method == "PATCH":
        parameters.append(
            {"name": "If-Match", "in": "header", "required": True, "schema": {"type": "string"}}
        )
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()}:{path}",
        "parameters": parameters,
        "responses": {"default": {"description": "FHIR resource or OperationOutcome"}},
    }
    media_type = _body_type(path, method)
    if media_type is not None:
        schema: dict[str, Any] = (
            {"type": "string", "format": "binary"}
            if media_type == "application/octet-stream"
            else {"type": "object"}
        )
        operation["requestBody"] = {"required": True, "content": {media_type: {"schema": schema}}}
    if isinstance(route, SecuredRoute):
        operation["security"] = [{"bearer": []}]
        if route.permission is not None:
            operation["x-openspine-permission"] = route.permission.value
    elif path.startswith(_MESH) and "{mailbox_id}" in path:
        operation["security"] = [{"nhsmesh": []}]
    return operation


def openapi_document(
    routes: Iterable[BaseRoute], *, version: str, query_parameters: QueryParameters
) -> dict[str, Any]:
    """The OpenAPI 3.0 document of ``routes`` (HEAD is implied by GET and left out), with the
    query parameters of each (path, method) that takes any."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or route.methods is None or not route.include_in_schema:
            continue
        path = route.path_format
        for method in sorted(route.methods - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = _operation(
                route, route.path, method, query_parameters
            )
    return {
        "openapi": "3.0.3",
        "info": {"title": "OpenSpine", "version": version},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "nhsmesh": {"type": "apiKey", "in": "header", "name": "Authorization"},
            }
        },
    }
