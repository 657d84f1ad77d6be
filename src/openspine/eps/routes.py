"""EPS HTTP routes (base ``/electronic-prescriptions/FHIR/R4``): prescribing so far."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from openspine.eps.service import EpsService
from openspine.platform.errors import AdditionalProperties
from openspine.platform.http import SecuredRoute, audit_context, fhir_response, read_body
from openspine.platform.idempotency import fingerprint
from openspine.platform.security.principal import Principal
from openspine.platform.security.rbac import Permission

__all__ = ["BASE_PATH", "QUERY_PARAMETERS", "routes"]

BASE_PATH: Final = "/electronic-prescriptions/FHIR/R4"
#: The query parameters of each (path, method), for the OpenAPI document.
QUERY_PARAMETERS: Final = {(f"{BASE_PATH}/Task", "GET"): ("group-identifier", "patient:identifier")}
#: A prescription message is tens of kilobytes; four items with long dosage text stay far below.
MAX_BODY: Final = 1024 * 1024


def routes(service: EpsService) -> list[BaseRoute]:
    async def prepare(request: Request, principal: Principal) -> Response:
        body = await read_body(request, MAX_BODY)
        return fhir_response(await service.prepare(principal, body, audit_context(request)))

    async def process_message(request: Request, principal: Principal) -> Response:
        body = await read_body(request, MAX_BODY)
        written = await service.process_message(
            principal,
            body,
            audit_context(request),
            fingerprint("POST", request.url.path, body),
        )
        return fhir_response(written.body, written.status, written.headers)

    async def release(request: Request, principal: Principal) -> Response:
        body = await read_body(request, MAX_BODY)
        written = await service.release(
            principal,
            body,
            audit_context(request),
            fingerprint("POST", request.url.path, body),
        )
        return fhir_response(written.body, written.status, written.headers)

    async def task(request: Request, principal: Principal) -> Response:
        body = await read_body(request, MAX_BODY)
        written = await service.task(
            principal,
            body,
            audit_context(request),
            fingerprint("POST", request.url.path, body),
        )
        return fhir_response(written.body, written.status, written.headers)

    async def tracker(request: Request, principal: Principal) -> Response:
        params = request.query_params
        for key in params:
            if key not in ("group-identifier", "patient:identifier"):
                raise AdditionalProperties(f"Invalid parameter - '{key[:40]}' is not supported")
        group = params.get("group-identifier")
        patient = params.get("patient:identifier")
        body = await service.track(
            principal,
            group.rsplit("|", 1)[-1] if group else None,
            patient.rsplit("|", 1)[-1] if patient else None,
            audit_context(request),
        )
        return fhir_response(body)

    async def verify_signature(request: Request, principal: Principal) -> Response:
        body = await read_body(request, MAX_BODY * 4)
        return fhir_response(
            await service.verify_signatures(principal, body, audit_context(request))
        )

    async def claim(request: Request, principal: Principal) -> Response:
        body = await read_body(request, MAX_BODY)
        written = await service.claim(
            principal,
            body,
            audit_context(request),
            fingerprint("POST", request.url.path, body),
        )
        return fhir_response(written.body, written.status, written.headers)

    return [
        SecuredRoute(
            f"{BASE_PATH}/$verify-signature",
            verify_signature,
            permission=Permission.EPS_PRESCRIPTION_READ,
            methods=["POST"],
        ),
        SecuredRoute(
            f"{BASE_PATH}/Claim",
            claim,
            permission=Permission.EPS_PRESCRIPTION_DISPENSE,
            methods=["POST"],
        ),
        SecuredRoute(
            f"{BASE_PATH}/Task",
            task,
            permission=Permission.EPS_PRESCRIPTION_DISPENSE,
            methods=["POST"],
        ),
        SecuredRoute(
            f"{BASE_PATH}/Task",
            tracker,
            permission=Permission.EPS_PRESCRIPTION_READ,
        ),
        SecuredRoute(
            f"{BASE_PATH}/Task/$release",
            release,
            permission=Permission.EPS_PRESCRIPTION_DISPENSE,
            methods=["POST"],
        ),
        SecuredRoute(
            f"{BASE_PATH}/$prepare",
            prepare,
            permission=Permission.EPS_PRESCRIPTION_PRESCRIBE,
            methods=["POST"],
        ),
        # One URL for prescribers' and dispensers' messages: the route admits either, and the
        # service checks the permission of the message's event (prescribe or dispense).
        SecuredRoute(
            f"{BASE_PATH}/$process-message",
            process_message,
            permission=Permission.EPS_PRESCRIPTION_READ,
            methods=["POST"],
        ),
    ]
