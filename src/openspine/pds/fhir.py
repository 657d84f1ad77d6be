"""PDS wire format: the restricted view of a Patient, and the CapabilityStatement."""

from __future__ import annotations

from typing import Any

import orjson

from openspine.pds.domain import LOCATION_EXTENSIONS, RESTRICTED_FIELDS

__all__ = [
    "capability_statement",
    "encode",
    "is_restricted",
    "restricted_view",
    "with_hidden_fields",
]

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


def encode(resource: dict[str, Any]) -> bytes:
    return orjson.dumps(resource)


def is_restricted(patient: dict[str, Any]) -> bool:
    security = patient.get("meta", {}).get("security", [])
    return any(s.get("system") == CONFIDENTIALITY and s.get("code") == "R" for s in security)


def restricted_view(patient: dict[str, Any]) -> dict[str, Any]:
    """The record as anyone but the patient may see it: no location-revealing data."""
    view = {k: v for k, v in patient.items() if k not in RESTRICTED_FIELDS}
    if "extension" in view:
        view["extension"] = [
            e for e in view["extension"] if e.get("url") not in LOCATION_EXTENSIONS
        ]
        if not view["extension"]:
            del view["extension"]
    return view


def with_hidden_fields(full: dict[str, Any], view: dict[str, Any]) -> dict[str, Any]:
    """``view`` (a changed restricted copy) with the location data of ``full`` put back."""
    merged = {k: v for k, v in view.items() if k not in RESTRICTED_FIELDS}
    for field in RESTRICTED_FIELDS:
        if field in full:
            merged[field] = full[field]
    hidden = [e for e in full.get("extension", []) if e.get("url") in LOCATION_EXTENSIONS]
    extensions = [*merged.get("extension", []), *hidden]
    if extensions:
        merged["extension"] = extensions
    return merged


def capability_statement(base_url: str, version: str) -> bytes:
    """What this server implements of the PDS FHIR API, and how to get a token for it."""
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-23",
        "publisher": "OpenSpine",
        "kind": "instance",
        "software": {"name": "OpenSpine", "version": version},
        "implementation": {
            "description": "OpenSpine Personal Demographics Service",
            "url": f"{base_url}/personal-demographics/FHIR/R4",
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [{"url": "token", "valueUri": f"{base_url}/oauth2/token"}],
                        }
                    ],
                },
                "resource": [
                    {
                        "type": "Patient",
                        "profile": "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient",
                        "interaction": [
                            {"code": "read"},
                            {"code": "search-type"},
                            {"code": "patch"},
                            {"code": "create"},
                        ],
                        "versioning": "versioned",
                        "readHistory": False,
                        "conditionalRead": "not-supported",
                        "conditionalUpdate": False,
                        "searchParam": [
                            {"name": name, "type": kind}
                            for name, kind in (
                                ("family", "string"),
                                ("given", "string"),
                                ("gender", "token"),
                                ("birthdate", "date"),
                                ("death-date", "date"),
                                ("address-postalcode", "string"),
                                ("general-practitioner", "reference"),
                                ("email", "token"),
                                ("phone", "token"),
                                ("_fuzzy-match", "special"),
                                ("_exact-match", "special"),
                                ("_history", "special"),
                                ("_max-results", "number"),
                            )
                        ],
                    }
                ],
            }
        ],
    }
    return orjson.dumps(statement)
