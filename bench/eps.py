"""EPS benchmark: prescriptions created, released, dispensed and claimed per second.

    python -m bench.eps [--prescriptions 400] [--concurrency 8]

Starts ``openspine demo --patients 0`` on a fresh store and drives it over loopback with httpx:
for each prescription ``$prepare``, sign with the demo prescriber's key, ``$process-message``;
then release, dispense (full) and claim each one. Every step is a signed-off, audited, durable
write. The load generator is Python (signing needs the key), so the figures are a floor.
Writes bench/results/eps.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from bench.run import RESULTS, free_port, stop, token, wait_ready
from openspine.eps.prescription_id import new_prescription_id

BASE = "/electronic-prescriptions/FHIR/R4"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


def order(user_id: str, role_profile: str, pharmacy: str) -> dict[str, Any]:
    """A one-item acute prescription-order message, in the NHS examples' shape."""
    urn = {k: f"urn:uuid:{uuid.uuid4()}" for k in ("mr", "patient", "role", "pr", "org", "prov")}
    item = str(uuid.uuid4())
    return {
        "resourceType": "Bundle",
        "type": "message",
        "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": str(uuid.uuid4())},
        "entry": [
            {
                "resource": {
                    "resourceType": "MessageHeader",
                    "eventCoding": {
                        "system": "https://fhir.nhs.uk/CodeSystem/message-event",
                        "code": "prescription-order",
                    },
                    "source": {"endpoint": "urn:nhs-uk:addressing:ods:A81001"},
                }
            },
            {
                "fullUrl": urn["mr"],
                "resource": {
                    "resourceType": "MedicationRequest",
                    "identifier": [
                        {
                            "system": "https://fhir.nhs.uk/Id/prescription-order-item-number",
                            "value": item,
                        }
                    ],
                    "status": "active",
                    "intent": "order",
                    "medicationCodeableConcept": {
                        "coding": [
                            {"system": "http://snomed.info/sct", "code": "39732311000001104"}
                        ]
                    },
                    "subject": {"reference": urn["patient"]},
                    "requester": {"reference": urn["role"]},
                    "groupIdentifier": {
                        "system": "https://fhir.nhs.uk/Id/prescription-order-number",
                        "value": new_prescription_id("A81001"),
                    },
                    "courseOfTherapyType": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy",
                                "code": "acute",
                            }
                        ]
                    },
                    "dosageInstruction": [{"text": "2 times a day for 10 days"}],
                    "dispenseRequest": {
                        "quantity": {"value": 20, "unit": "tablet"},
                        "expectedSupplyDuration": {"value": 10, "unit": "day", "code": "d"},
                        "performer": {"identifier": {"system": ODS, "value": pharmacy}},
                    },
                },
            },
            {
                "fullUrl": urn["patient"],
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [
                        {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000017"}
                    ],
                },
            },
            {
                "fullUrl": urn["role"],
                "resource": {
                    "resourceType": "PractitionerRole",
                    "identifier": [
                        {
                            "system": "https://fhir.nhs.uk/Id/sds-role-profile-id",
                            "value": role_profile,
                        }
                    ],
                    "practitioner": {"reference": urn["pr"]},
                    "organization": {"reference": urn["org"]},
                },
            },
            {
                "fullUrl": urn["pr"],
                "resource": {
                    "resourceType": "Practitioner",
                    "identifier": [
                        {"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": user_id},
                        {"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "6095103"},
                    ],
                },
            },
            {
                "fullUrl": urn["org"],
                "resource": {
                    "resourceType": "Organization",
                    "identifier": [{"system": ODS, "value": "A81001"}],
                },
            },
            {
                "fullUrl": urn["prov"],
                "resource": {"resourceType": "Provenance", "signature": [{"data": ""}]},
            },
        ],
    }


def release_body(prescription_id: str, pharmacy: str) -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "group-identifier",
                "valueIdentifier": {
                    "system": "https://fhir.nhs.uk/Id/prescription-order-number",
                    "value": prescription_id,
                },
            },
            {
                "name": "owner",
                "resource": {
                    "resourceType": "Organization",
                    "identifier": [{"system": ODS, "value": pharmacy}],
                },
            },
        ],
    }


def dispense_body(prescription_id: str, item: str, pharmacy: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "message",
        "identifier": {
            "system": "https://tools.ietf.org/html/rfc4122",
            "value": str(uuid.uuid4()),
        },
        "entry": [
            {
                "resource": {
                    "resourceType": "MessageHeader",
                    "eventCoding": {
                        "system": "https://fhir.nhs.uk/CodeSystem/message-event",
                        "code": "dispense-notification",
                    },
                }
            },
            {
                "resource": {
                    "resourceType": "MedicationDispense",
                    "status": "completed",
                    "contained": [
                        {
                            "resourceType": "MedicationRequest",
                            "id": "m1",
                            "identifier": [
                                {
                                    "system": "https://fhir.nhs.uk/Id/prescription-order-item-number",
                                    "value": item,
                                }
                            ],
                            "groupIdentifier": {
                                "system": "https://fhir.nhs.uk/Id/prescription-order-number",
                                "value": prescription_id,
                            },
                        }
                    ],
                    "type": {
                        "coding": [
                            {
                                "system": "https://fhir.nhs.uk/CodeSystem/medicationdispense-type",
                                "code": "0001",
                            }
                        ]
                    },
                    "extension": [
                        {
                            "url": "https://fhir.nhs.uk/StructureDefinition/Extension-EPS-TaskBusinessStatus",
                            "valueCoding": {"code": "0006"},
                        }
                    ],
                }
            },
            {
                "resource": {
                    "resourceType": "Organization",
                    "identifier": [{"system": ODS, "value": pharmacy}],
                }
            },
        ],
    }


def claim_body(prescription_id: str, pharmacy: str) -> dict[str, Any]:
    return {
        "resourceType": "Claim",
        "identifier": [
            {
                "system": "https://tools.ietf.org/html/rfc4122",
                "value": str(uuid.uuid4()),
            }
        ],
        "patient": {
            "identifier": {
                "system": "https://fhir.nhs.uk/Id/nhs-number",
                "value": "9000000017",
            }
        },
        "prescription": {
            "extension": [
                {
                    "url": "https://fhir.nhs.uk/StructureDefinition/Extension-DM-GroupIdentifier",
                    "extension": [
                        {
                            "url": "shortForm",
                            "valueIdentifier": {
                                "system": "https://fhir.nhs.uk/Id/prescription-order-number",
                                "value": prescription_id,
                            },
                        }
                    ],
                }
            ]
        },
        "provider": {"reference": "#provider"},
        "contained": [
            {
                "resourceType": "Organization",
                "id": "provider",
                "identifier": [{"system": ODS, "value": pharmacy}],
            }
        ],
        "item": [{"sequence": 1}],
    }


class Flow:
    def __init__(self, data_dir: Path, base_url: str) -> None:
        creds = json.loads((data_dir / "demo-credentials.json").read_text())
        self.base_url = base_url
        self.data_dir = data_dir
        self.gp = next(
            (u["user_id"], rp)
            for u in creds["users"]
            for rp in u["role_profiles"]
            if rp["job_role_code"].endswith("R8000")
        )
        self.pharmacist = next(
            rp
            for u in creds["users"]
            for rp in u["role_profiles"]
            if rp["job_role_code"].endswith("R8003")
        )
        key = serialization.load_pem_private_key(
            (data_dir / self.gp[1]["signing_key_file"]).read_bytes(), None
        )
        assert isinstance(key, rsa.RSAPrivateKey)
        self.key = key
        cert = (data_dir / self.gp[1]["certificate_file"]).read_bytes()
        from cryptography import x509

        self.der = base64.b64encode(
            x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER)
        ).decode()

    def token(self, user: str, role_profile: str) -> str:
        return token(self.data_dir, user, role_profile)

    def sign(self, bundle: dict[str, Any], prepared: dict[str, Any]) -> dict[str, Any]:
        info = base64.b64decode(prepared["parameter"][0]["valueString"])
        canonical = etree.tostring(etree.fromstring(info), method="c14n", exclusive=True)
        value = base64.b64encode(
            self.key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())
        ).decode()
        inner = info.decode().split(">", 1)[1].rsplit("</SignedInfo>", 1)[0]
        xml = (
            '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">'
            f"<SignedInfo>{inner}</SignedInfo><SignatureValue>{value}</SignatureValue>"
            f"<KeyInfo><X509Data><X509Certificate>{self.der}</X509Certificate></X509Data></KeyInfo>"
            "</Signature>"
        )
        signed = copy.deepcopy(bundle)
        signed["entry"][-1]["resource"]["signature"][0]["data"] = base64.b64encode(
            xml.encode()
        ).decode()
        return signed


async def run(flow: Flow, count: int, concurrency: int) -> dict[str, Any]:
    gp_token = flow.token(flow.gp[0], flow.gp[1]["role_profile_id"])
    pharmacy = flow.pharmacist["ods_code"]
    users = json.loads((flow.data_dir / "demo-credentials.json").read_text())["users"]
    pharmacist_user = next(u["user_id"] for u in users if flow.pharmacist in u["role_profiles"])
    dispenser_token = flow.token(pharmacist_user, flow.pharmacist["role_profile_id"])
    limits = httpx.Limits(max_connections=concurrency)
    timings: dict[str, float] = {}
    ids: list[tuple[str, str]] = []
    async with httpx.AsyncClient(base_url=flow.base_url, limits=limits, timeout=30) as http:

        async def call(token: str, path: str, body: dict[str, Any]) -> httpx.Response:
            response = await http.post(
                f"{BASE}/{path}",
                json=body,
                headers={"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())},
            )
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
            return response

        gate = asyncio.Semaphore(concurrency)

        async def create() -> None:
            async with gate:
                bundle = order(flow.gp[0], flow.gp[1]["role_profile_id"], pharmacy)
                prepared = (await call(gp_token, "$prepare", bundle)).json()
                await call(gp_token, "$process-message", flow.sign(bundle, prepared))
                request = bundle["entry"][1]["resource"]
                ids.append((request["groupIdentifier"]["value"], request["identifier"][0]["value"]))

        async def release(prescription_id: str) -> None:
            async with gate:
                await call(
                    dispenser_token,
                    "Task/$release",
                    release_body(prescription_id, pharmacy),
                )

        async def dispense(prescription_id: str, item: str) -> None:
            async with gate:
                await call(
                    dispenser_token,
                    "$process-message",
                    dispense_body(prescription_id, item, pharmacy),
                )

        async def claim(prescription_id: str) -> None:
            async with gate:
                await call(
                    dispenser_token,
                    "Claim",
                    claim_body(prescription_id, pharmacy),
                )

        phases: tuple[tuple[str, Callable[[], list[Coroutine[Any, Any, Any]]]], ...] = (
            ("created", lambda: [create() for _ in range(count)]),
            ("released", lambda: [release(p) for p, _ in ids]),
            ("dispensed", lambda: [dispense(p, i) for p, i in ids]),
            ("claimed", lambda: [claim(p) for p, _ in ids]),
        )
        for name, jobs in phases:
            started = time.monotonic()
            await asyncio.gather(*jobs())
            timings[name] = round(count / (time.monotonic() - started), 1)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prescriptions", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="openspine-eps-bench-"))
    port = free_port()
    log = (work / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openspine.cli",
            "demo",
            "--patients",
            "0",
            "--data-dir",
            str(work / "store"),
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    finished = False
    try:
        wait_ready(f"http://127.0.0.1:{port}/_status", timeout=120)
        flow = Flow(work / "store", f"http://127.0.0.1:{port}")
        rates = asyncio.run(run(flow, args.prescriptions, args.concurrency))
        finished = True
    finally:
        stop(server)
        log.close()
        if finished:  # a finished run leaves nothing behind; a failed one its store and log
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"the store and the server's log are kept in {work}", file=sys.stderr)
    report = {
        "prescriptions": args.prescriptions,
        "concurrency": args.concurrency,
        "per_second": rates,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (RESULTS / "eps.json").write_text(json.dumps(report, indent=2))
    print("| step | per second |")
    print("|---|---:|")
    for step, rate in rates.items():
        print(
            f"| {step} (prepare + sign + process for 'created') | {rate:,.1f} |"
            if step == "created"
            else f"| {step} | {rate:,.1f} |"
        )


if __name__ == "__main__":
    main()
