"""PDS HTTP routes (thin: parse, call one service function, render)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from openspine.pds.service import PdsService
from openspine.platform.http import SecuredRoute, audit_context, fhir_response
from openspine.platform.security.principal import Principal
from openspine.platform.security.rbac import Permission

__all__ = ["BASE_PATH", "routes"]

BASE_PATH = "/personal-demographics/FHIR/R4"


def routes(service: PdsService, capability: bytes) -> list[BaseRoute]:
    async def read_patient(request: Request, principal: Principal) -> Response:
        view = await service.read_patient(
            principal, request.path_params["nhs_number"], audit_context(request)
        )
        return fhir_response(view.body, headers={"ETag": view.etag})

    async def metadata(request: Request) -> Response:
        return fhir_response(capability)

    return [
        Route(f"{BASE_PATH}/metadata", metadata, methods=["GET"]),
        SecuredRoute(
            f"{BASE_PATH}/Patient/{{nhs_number}}",
            read_patient,
            permission=Permission.PDS_PATIENT_READ,
        ),
    ]
