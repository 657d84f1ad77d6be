"""Spine Directory Service FHIR routes (base ``/spine-directory/FHIR/R4``).

``/Device`` and ``/Endpoint`` follow the SDS FHIR API's parameters and combinations;
``/Organization`` is an ODS-style lookup and search; ``/PractitionerRole`` serves the role
profiles the security layer checks. Every route needs a valid access token (any mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from openspine.directory import fhir
from openspine.directory.domain import (
    AccreditedSystem,
    MessageHandler,
    Organisation,
    OrganisationRole,
    RoleProfile,
    User,
)
from openspine.directory.storage import DirectoryRecords
from openspine.platform.errors import (
    AdditionalProperties,
    InvalidSearchData,
    InvalidValue,
    MissingValue,
    ResourceNotFound,
)
from openspine.platform.http import SecuredRoute, fhir_response
from openspine.platform.normalise import normalise_name, normalise_postcode
from openspine.platform.security.principal import Principal
from openspine.platform.security.rbac import Permission
from openspine.platform.storage.ports import Store

__all__ = ["BASE_PATH", "QUERY_PARAMETERS", "routes"]

BASE_PATH: Final = "/spine-directory/FHIR/R4"
#: The query parameters of each (path, method), for the OpenAPI document.
QUERY_PARAMETERS: Final = {
    (f"{BASE_PATH}/Device", "GET"): ("organization", "identifier", "manufacturing-organization"),
    (f"{BASE_PATH}/Endpoint", "GET"): ("organization", "identifier"),
    (f"{BASE_PATH}/Organization", "GET"): (
        "identifier",
        "name",
        "address-postalcode",
        "type",
        "_count",
    ),
    (f"{BASE_PATH}/PractitionerRole", "GET"): ("practitioner.identifier", "organization"),
}
MAX_RESULTS: Final = 100
_SDS_PARAMS: Final = frozenset({"organization", "identifier", "manufacturing-organization"})
_ORG_PARAMS: Final = frozenset({"identifier", "name", "address-postalcode", "type", "_count"})
_ROLE_PARAMS: Final = frozenset({"practitioner.identifier", "organization"})


def _known(request: Request, allowed: frozenset[str]) -> None:
    for key in request.query_params:
        if key not in allowed:
            raise AdditionalProperties(f"Invalid parameter - '{key[:40]}' is not supported")


def _token(value: str, system: str, name: str) -> str:
    found_system, _, code = value.partition("|")
    if found_system != system or not code:
        raise InvalidValue(f"Invalid value - '{name}' must be '{system}|<value>'")
    return code


def _identifiers(values: Sequence[str]) -> tuple[str | None, str | None]:
    """(service interaction, party key) from the repeatable ``identifier`` parameter."""
    interaction = party = None
    for value in values:
        system, _, code = value.partition("|")
        if system == fhir.INTERACTION and code and interaction is None:
            interaction = code
        elif system == fhir.PARTY_KEY and code and party is None:
            party = code
        else:
            raise InvalidValue(
                f"Invalid value - 'identifier' must be '{fhir.INTERACTION}|<id>' or"
                f" '{fhir.PARTY_KEY}|<key>', each at most once"
            )
    return interaction, party


def routes(store: Store, base_url: str) -> list[BaseRoute]:
    records = DirectoryRecords(store)
    service_url = base_url + BASE_PATH

    async def devices(request: Request, principal: Principal) -> Response:
        _known(request, _SDS_PARAMS)
        org = request.query_params.get("organization")
        if org is None:
            raise MissingValue("Missing value - 'organization'")
        ods = _token(org, fhir.ODS, "organization").upper()
        interaction, party = _identifiers(request.query_params.getlist("identifier"))
        if interaction is None:
            raise MissingValue(f"Missing value - 'identifier' with system {fhir.INTERACTION}")
        maker = request.query_params.get("manufacturing-organization")
        maker_ods = _token(maker, fhir.ODS, "manufacturing-organization") if maker else None
        prefix = f"{ods}|{interaction}|"
        found = await records.scan(AccreditedSystem, "asint", prefix, prefix + "~", MAX_RESULTS)
        matches = [
            fhir.device(s)
            for s in found
            if (party is None or s.party_key == party)
            and (maker_ods is None or s.manufacturing_ods_code == maker_ods.upper())
        ]
        return fhir_response(fhir.searchset(matches, service_url))

    async def endpoints(request: Request, principal: Principal) -> Response:
        _known(request, _SDS_PARAMS - {"manufacturing-organization"})
        org = request.query_params.get("organization")
        ods = _token(org, fhir.ODS, "organization").upper() if org is not None else None
        interaction, party = _identifiers(request.query_params.getlist("identifier"))
        found: list[MessageHandler]
        if ods and interaction:
            prefix = f"{ods}|{interaction}|"
            found = await records.scan(MessageHandler, "mhsint", prefix, prefix + "~", MAX_RESULTS)
            found = [h for h in found if party is None or h.party_key == party]
        elif ods and party:
            key = f"{ods}|{party}"
            found = await records.scan(MessageHandler, "mhsorg", key, key, MAX_RESULTS)
        elif interaction and party:
            key = f"{party}|{interaction}"
            found = await records.scan(MessageHandler, "mhsparty", key, key, MAX_RESULTS)
        else:
            raise InvalidSearchData(
                "Invalid search data provided - use organization with identifier (service"
                " interaction and/or party key), or a service interaction with a party key"
            )
        resources = [fhir.endpoint(h, base_url) for h in found]
        return fhir_response(fhir.searchset(resources, service_url))

    async def organisation(request: Request, principal: Principal) -> Response:
        found = await records.get(Organisation, request.path_params["ods_code"].upper())
        if found is None:
            raise ResourceNotFound()
        return fhir_response(orjson.dumps(fhir.organization(found)))

    async def organisations(request: Request, principal: Principal) -> Response:
        _known(request, _ORG_PARAMS)
        params = request.query_params
        count = params.get("_count", "20")
        if not (count.isascii() and count.isdigit()) or not 1 <= int(count) <= MAX_RESULTS:
            raise InvalidValue(f"Invalid value - '_count' must be 1 to {MAX_RESULTS}")
        candidates: list[Organisation] | None = None

        def narrow(found: list[Organisation]) -> None:
            nonlocal candidates
            codes = {o.ods_code for o in found}
            candidates = (
                found if candidates is None else [o for o in candidates if o.ods_code in codes]
            )

        if "identifier" in params:
            code = _token(params["identifier"], fhir.ODS, "identifier").upper()
            narrow(await records.scan(Organisation, "odscode", code, code))
        if "name" in params:
            words = normalise_name(params["name"]).split()
            if not words:
                raise InvalidValue("Invalid value - 'name'")
            first = words[0]
            found = await records.scan(Organisation, "orgword", first, first + "~", 5000)
            wanted = set(words)
            narrow([o for o in found if wanted <= set(normalise_name(o.name).split()) | {first}])
        if "address-postalcode" in params:
            postcode = normalise_postcode(params["address-postalcode"])
            if len(postcode) < 2:
                raise InvalidValue("Invalid value - 'address-postalcode' needs 2 characters")
            narrow(await records.scan(Organisation, "orgpc", postcode, postcode + "~", 5000))
        if "type" in params:
            role = params["type"].rsplit("|", 1)[-1]
            if role not in {r.value for r in OrganisationRole}:
                raise InvalidValue("Invalid value - 'type' must be an ODS role code")
            narrow(await records.scan(Organisation, "orgrole", f"{role}|", f"{role}|~", 5000))
        if candidates is None:
            raise InvalidSearchData(
                "Invalid search data provided - give identifier, name, address-postalcode or type"
            )
        resources = [fhir.organization(o) for o in candidates[: int(count)]]
        return fhir_response(fhir.searchset(resources, service_url))

    async def practitioner(request: Request, principal: Principal) -> Response:
        found = await records.get(User, request.path_params["user_id"])
        if found is None:
            raise ResourceNotFound()
        return fhir_response(orjson.dumps(fhir.practitioner(found)))

    async def practitioner_roles(request: Request, principal: Principal) -> Response:
        _known(request, _ROLE_PARAMS)
        params = request.query_params
        if "practitioner.identifier" in params:
            user = _token(
                params["practitioner.identifier"],
                "https://fhir.nhs.uk/Id/sds-user-id",
                "practitioner.identifier",
            )
            found = await records.scan(RoleProfile, "rpuser", f"{user}|", f"{user}|~")
        elif "organization" in params:
            ods = _token(params["organization"], fhir.ODS, "organization").upper()
            found = await records.scan(RoleProfile, "rporg", f"{ods}|", f"{ods}|~", MAX_RESULTS)
        else:
            raise MissingValue("Missing value - 'practitioner.identifier' or 'organization'")
        resources = [fhir.practitioner_role(p) for p in found]
        return fhir_response(fhir.searchset(resources, service_url))

    return [
        SecuredRoute(f"{BASE_PATH}/Device", devices, permission=Permission.DIRECTORY_READ),
        SecuredRoute(f"{BASE_PATH}/Endpoint", endpoints, permission=Permission.DIRECTORY_READ),
        SecuredRoute(
            f"{BASE_PATH}/Organization", organisations, permission=Permission.DIRECTORY_READ
        ),
        SecuredRoute(
            f"{BASE_PATH}/Organization/{{ods_code}}",
            organisation,
            permission=Permission.DIRECTORY_READ,
        ),
        SecuredRoute(
            f"{BASE_PATH}/PractitionerRole",
            practitioner_roles,
            permission=Permission.DIRECTORY_READ,
        ),
        SecuredRoute(
            f"{BASE_PATH}/Practitioner/{{user_id}}",
            practitioner,
            permission=Permission.DIRECTORY_READ,
        ),
    ]
