"""Accredited systems (SDS ``Device``) and message handlers (SDS ``Endpoint``) of the demo.

Each demo organisation has one accredited system (ASID, party key, the interactions its kind of
organisation performs) and one MHS record; Spine itself (ODS ``YES``) has the MHS through which
reliable messaging reaches it, as in the SDS example.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from openspine.directory.domain import (
    AccreditedSystem,
    MessageHandler,
    Organisation,
    OrganisationRole,
)

__all__ = ["SPINE_ODS", "SPINE_PARTY_KEY", "demo_systems"]

SPINE_ODS: Final = "YES"
SPINE_PARTY_KEY: Final = "YES-0000806"
SUPPLIER_ODS: Final = "YGA"  # the demo's system supplier (manufacturing organisation)
_GPC = "urn:nhs:names:services:gpconnect:fhir"
INTERACTIONS: Final[dict[OrganisationRole, tuple[str, ...]]] = {
    OrganisationRole.GP_PRACTICE: (
        f"{_GPC}:operation:gpc.getstructuredrecord-1",
        f"{_GPC}:rest:read:metadata-1",
        "urn:nhs:names:services:mm:PORX_IN020101SM31",
        "urn:nhs:names:services:pds:QUPA_IN040000UK32",
    ),
    OrganisationRole.PHARMACY: (
        "urn:nhs:names:services:mm:PORX_IN060102UK30",
        "urn:nhs:names:services:mm:PORX_IN080101SM31",
        "urn:nhs:names:services:pds:QUPA_IN040000UK32",
    ),
    OrganisationRole.NHS_TRUST: (
        "urn:nhs:names:services:psis:REPC_IN150016UK05",
        "urn:nhs:names:services:pds:QUPA_IN040000UK32",
    ),
}
SPINE_INTERACTIONS: Final = (
    "urn:nhs:names:services:psis:REPC_IN150016UK05",
    "urn:nhs:names:services:mm:PORX_IN020101SM31",
    "urn:nhs:names:services:pds:QUPA_IN040000UK32",
)


def demo_systems(orgs: Sequence[Organisation]) -> list[AccreditedSystem | MessageHandler]:
    records: list[AccreditedSystem | MessageHandler] = [
        MessageHandler(
            party_key=SPINE_PARTY_KEY,
            ods_code=SPINE_ODS,
            asid="990000000001",
            address="/reliablemessaging/reliablerequest",  # on this platform's own base URL
            fqdn="openspine",
            cpa_id="S20001A000182",
            interactions=SPINE_INTERACTIONS,
        )
    ]
    for i, org in enumerate(orgs):
        interactions = tuple(
            dict.fromkeys(x for role in org.roles for x in INTERACTIONS.get(role, ()))
        )
        if not interactions:
            continue
        asid = f"{200000000000 + i}"
        party_key = f"{org.ods_code}-{800000 + i}"
        host = f"{org.ods_code.lower()}.mhs.openspine.test"
        records.append(
            AccreditedSystem(
                asid=asid,
                ods_code=org.ods_code,
                party_key=party_key,
                manufacturing_ods_code=SUPPLIER_ODS,
                interactions=interactions,
                name=f"{org.name} clinical system",
            )
        )
        records.append(
            MessageHandler(
                party_key=party_key,
                ods_code=org.ods_code,
                asid=asid,
                address=f"https://{host}/fhir",
                fqdn=host,
                cpa_id=f"S{800000 + i}A{i:06d}",
                interactions=interactions,
            )
        )
    return records
