"""PDS HTTP routes (thin: parse, call one service function, render)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from openspine.pds.search_query import SEARCH_CRITERIA, SEARCH_OPTIONS, parse_search
from openspine.pds.service import PdsService
from openspine.platform.errors import InvalidValue, UnsupportedService
from openspine.platform.http import SecuredRoute, audit_context, fhir_response, read_body
from openspine.platform.idempotency import WrittenResponse, fingerprint
from openspine.platform.routing import SpineRoute
from openspine.platform.security.principal import Principal
from openspine.platform.security.rbac import Permission

__all__ = ["BASE_PATH", "MAX_BODY", "QUERY_PARAMETERS", "routes"]

BASE_PATH = "/personal-demographics/FHIR/R4"
#: A Patient is a few kilobytes; anything near this is not a Patient.
MAX_BODY = 256 * 1024
JSON_PATCH = "application/json-patch+json"
#: The query parameters of each (path, method), for the OpenAPI document.
QUERY_PARAMETERS = {(f"{BASE_PATH}/Patient", "GET"): (*SEARCH_CRITERIA, *SEARCH_OPTIONS)}


def _written(response: WrittenResponse) -> Response:
    return fhir_response(response.body, response.status, response.headers)


def routes(service: PdsService, capability: bytes) -> list[BaseRoute]:
    async def read_patient(request: Request, principal: Principal) -> Response:
        view = await service.read_patient(
            principal, request.path_params["nhs_number"], audit_context(request)
        )
        return fhir_response(view.body, headers={"ETag": view.etag})

    async def related_persons(request: Request, principal: Principal) -> Response:
        body = await service.related_persons(
            principal, request.path_params["nhs_number"], audit_context(request)
        )
        return fhir_response(body)

    async def search_patients(request: Request, principal: Principal) -> Response:
        query = parse_search(request.query_params.multi_items(), principal.mode)
        outcome = await service.search(principal, query, audit_context(request))
        return fhir_response(outcome.body)

    async def update_patient(request: Request, principal: Principal) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type != JSON_PATCH:
            raise InvalidValue(f"Invalid value - Content-Type must be '{JSON_PATCH}'")
        body = await read_body(request, MAX_BODY)
        nhs_number = request.path_params["nhs_number"]
        if_match = request.headers.get("if-match")
        written = await service.update_patient(
            principal,
            nhs_number,
            if_match,
            body,
            audit_context(request),
            fingerprint("PATCH", request.url.path + (if_match or ""), body),
        )
        return _written(written)

    async def missing_nhs_number(request: Request, principal: Principal) -> Response:
        raise UnsupportedService("Missing NHS number")

    async def create_patient(request: Request, principal: Principal) -> Response:
        body = await read_body(request, MAX_BODY)
        written = await service.create_patient(
            principal, body, audit_context(request), fingerprint("POST", request.url.path, body)
        )
        return _written(written)

    async def metadata(request: Request) -> Response:
        return fhir_response(capability)

    return [
        SpineRoute(f"{BASE_PATH}/metadata", metadata, methods=["GET"]),
        SecuredRoute(
            f"{BASE_PATH}/Patient",
            search_patients,
            permission=Permission.PDS_PATIENT_SEARCH,
        ),
        SecuredRoute(
            f"{BASE_PATH}/Patient",
            create_patient,
            permission=Permission.PDS_PATIENT_CREATE,
            methods=["POST"],
        ),
        SecuredRoute(
            f"{BASE_PATH}/Patient/",
            missing_nhs_number,
            permission=Permission.PDS_PATIENT_UPDATE,
            methods=["PATCH"],
        ),
        SecuredRoute(
            f"{BASE_PATH}/Patient/{{nhs_number}}",
            read_patient,
            permission=Permission.PDS_PATIENT_READ,
        ),
        SecuredRoute(
            f"{BASE_PATH}/Patient/{{nhs_number}}",
            update_patient,
            permission=Permission.PDS_PATIENT_UPDATE,
            methods=["PATCH"],
        ),
        SecuredRoute(
            f"{BASE_PATH}/Patient/{{nhs_number}}/RelatedPerson",
            related_persons,
            permission=Permission.PDS_PATIENT_READ,
        ),
    ]
