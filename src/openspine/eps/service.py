"""EPS prescribing use cases: ``$prepare`` and ``$process-message`` (prescription-order).

A prescription is a versioned resource (``Prescription``, keyed by its short-form ID) whose
version is Spine's change number: every later change (release, dispense, cancel) is a
conditional write, so two pharmacies cannot both release it. Creation is audited and announced
in the outbox in the same commit; retries with the same X-Request-ID replay the first answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Final

import orjson
from cryptography import x509

from openspine.directory.domain import RoleProfile
from openspine.directory.storage import DirectoryRecords
from openspine.eps.cancellation import decide, parse_cancel, response_bundle
from openspine.eps.claims import apply_claim, parse_claim
from openspine.eps.dispensing import (
    apply_notification,
    parse_notification,
    parse_task,
    return_prescription,
    withdraw,
)
from openspine.eps.order import RELEASED_INTENTS, PrescriptionOrder, parse_order
from openspine.eps.release import (
    NOMINATED_BATCH,
    NotReleasable,
    WithAnotherDispenser,
    parse_release,
    release,
)
from openspine.eps.signature import content_digest, prepare_parameters, verify_signature
from openspine.eps.status import (
    Event,
    InvalidStateTransition,
    LineItemStatus,
    PrescriptionStatus,
    next_status,
)
from openspine.pds.ports import PATIENT
from openspine.platform.audit.events import AuditAction, AuditContext, AuditOutcome, audit_record
from openspine.platform.errors import (
    BadRequest,
    Forbidden,
    InvalidRequest,
    InvalidValue,
    MissingValue,
    ResourceNotFound,
    ServiceUnavailable,
    SpineError,
)
from openspine.platform.idempotency import PreparedWrite, WrittenResponse, run_idempotent
from openspine.platform.security.principal import Principal
from openspine.platform.security.rbac import Permission
from openspine.platform.storage.ports import (
    AlreadyExists,
    OutboxMessage,
    PutResource,
    ResourceState,
    Store,
    StoredResource,
    VersionConflict,
    WriteSet,
)

__all__ = ["PRESCRIPTION", "DuplicatePrescriptionId", "EpsService"]

PRESCRIPTION: Final = "Prescription"
#: Optimistic concurrency: a change that lost the race is decided again this many times.
MAX_CONFLICT_RETRIES: Final = 5


#: Statuses the expiry job acts on, and the status from which a future instance becomes due.
EXPIRABLE: Final = frozenset({"0000", "0001", "0002", "0003", "9000"})


def prescription_keys(record: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Tracker by patient, always; the nominated pharmacy's queue while To Be Dispensed; the
    expiry queue while it can expire; the activation queue while future-dated."""
    prescription_id, status = record["prescriptionId"], record["status"]
    keys = [("rxpatient", f"{record['patient']}|{prescription_id}")]
    if record.get("performer") and status == PrescriptionStatus.TO_BE_DISPENSED.code:
        keys.append(("rxready", f"{record['performer']}|{prescription_id}"))
    if status in EXPIRABLE and record.get("expiresOn"):
        keys.append(("rxexpire", f"{record['expiresOn']}|{prescription_id}"))
    if status == PrescriptionStatus.FUTURE_DATED.code and record.get("validityStart"):
        keys.append(("rxactivate", f"{str(record['validityStart'])[:10]}|{prescription_id}"))
    return tuple(keys)


class WithAnotherDispenserError(SpineError):
    status = 400
    code = "PRESCRIPTION_WITH_ANOTHER_DISPENSER"
    display = "Prescription is with another dispenser"
    issue_type = "business-rule"

    def __init__(self, dispenser: str) -> None:
        super().__init__()
        self.dispenser = dispenser

    def outcome(self) -> bytes:
        return orjson.dumps(
            {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "code": self.issue_type,
                        "severity": "error",
                        "details": {
                            "coding": [
                                {
                                    "system": "https://fhir.nhs.uk/CodeSystem/EPS-IssueCode",
                                    "code": self.code,
                                    "display": self.display,
                                }
                            ]
                        },
                    }
                ],
                "contained": [
                    {
                        "resourceType": "Organization",
                        "id": self.dispenser,
                        "identifier": [
                            {
                                "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                "value": self.dispenser,
                            }
                        ],
                    }
                ],
            }
        )


class PatientDeceased(BadRequest):
    code = "PATIENT_DECEASED"
    display = "Patient is deceased"
    issue_type = "business-rule"


class DuplicatePrescriptionId(BadRequest):
    code = "DUPLICATE_PRESCRIPTION_ID"
    display = "Duplicate prescription ID exists."
    issue_type = "duplicate"


class CancellationError(SpineError):
    """An R-code answered as an OperationOutcome (the cancellation found nothing to act on)."""

    system: ClassVar[str] = "https://fhir.nhs.uk/CodeSystem/medicationrequest-status-history"

    def outcome(self) -> bytes:
        return orjson.dumps(
            {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": self.issue_type,
                        "details": {
                            "coding": [
                                {"system": self.system, "code": self.code, "display": self.display}
                            ]
                        },
                        **({"diagnostics": self.diagnostics} if self.diagnostics else {}),
                    }
                ],
            }
        )


class PrescriptionNotFound(CancellationError):
    status = 404
    code = "R-0008"
    display = "Prescription/item not found"
    issue_type = "not-found"


class CancellationMismatch(CancellationError):
    status = 400
    code = "R-5000"
    display = (
        "Unable to process message. Information missing or invalid - Mismatch between"
        " prescription and cancellation NHSNumber"
    )
    issue_type = "processing"


class UnsupportedMessage(BadRequest):
    code = "INVALID_VALUE"
    display = "Provided value is invalid"
    issue_type = "not-supported"


def _next_version(stored: StoredResource, record: Mapping[str, Any]) -> PutResource:
    """The conditional write of a changed prescription: it fails if another change came first."""
    return PutResource(
        PRESCRIPTION,
        stored.id,
        stored.version + 1,
        orjson.dumps(record),
        stored.version,
        search_keys=prescription_keys(record),
    )


def _status_change(
    stored: StoredResource,
    record: Mapping[str, Any],
    changed: Mapping[str, Any],
    action: AuditAction,
    topic: str,
    principal: Principal | None,
    context: AuditContext,
) -> WriteSet:
    """A prescription moved from one status to another: the write, its audit event and event."""
    return WriteSet(
        puts=[_next_version(stored, changed)],
        audit=[
            audit_record(
                action=action,
                outcome=AuditOutcome.SUCCESS,
                principal=principal,
                context=context,
                patients=[record["patient"]],
                resources=[f"{PRESCRIPTION}/{stored.id}"],
                detail=f"status {record['status']} -> {changed['status']}",
            )
        ],
        outbox=[
            OutboxMessage(
                topic,
                stored.id,
                orjson.dumps({"prescriptionId": stored.id, "status": changed["status"]}),
            )
        ],
    )


def _bundle(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("Incorrect FHIR resource type. Expected Bundle.")
    return parsed


def _bundle_or_parameters(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("Incorrect FHIR resource type. Expected Parameters.")
    return parsed


def _searchset(resources: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "search": {"mode": "match"}, "resource": r}
            for r in resources
        ],
    }


_INFORMATIONAL: Final = orjson.dumps(
    {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational"}],
    }
)
_TASK_STATUS: Final = {
    "0000": "on-hold",
    "0001": "requested",
    "0002": "in-progress",
    "0003": "in-progress",
    "0004": "failed",
    "0005": "cancelled",
    "0006": "completed",
    "0007": "completed",
    "0008": "completed",
    "0009": "completed",
    "9000": "on-hold",
    "9001": "on-hold",
    "9005": "cancelled",
}


def tracker_task(record: Mapping[str, Any]) -> dict[str, Any]:
    """A prescription as the tracker shows it: a FHIR Task with Spine's business status."""
    status = PrescriptionStatus.from_code(record["status"])
    task: dict[str, Any] = {
        "resourceType": "Task",
        # FHIR ids exclude '+', a check character a short-form ID may end with
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "prescription:" + record["prescriptionId"])),
        "status": _TASK_STATUS[status.code],
        "intent": "order",
        "businessStatus": {
            "coding": [
                {
                    "system": "https://fhir.nhs.uk/CodeSystem/EPS-task-business-status",
                    "code": status.code,
                    "display": status.display,
                }
            ]
        },
        "groupIdentifier": {
            "system": "https://fhir.nhs.uk/Id/prescription-order-number",
            "value": record["prescriptionId"],
        },
        "for": {
            "identifier": {
                "system": "https://fhir.nhs.uk/Id/nhs-number",
                "value": record["patient"],
            }
        },
        "authoredOn": record.get("createdAt"),
        "requester": {
            "identifier": {
                "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                "value": record["organisation"],
            }
        },
        "output": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "https://fhir.nhs.uk/CodeSystem/medicationdispense-type",
                            "code": item["status"],
                            "display": _line_display(item["status"]),
                        }
                    ]
                },
                "valueReference": {
                    "identifier": {
                        "system": "https://fhir.nhs.uk/Id/prescription-order-item-number",
                        "value": item["identifier"],
                    }
                },
            }
            for item in record["items"]
        ],
    }
    if record.get("repeatsAllowed"):
        task["extension"] = [
            {
                "url": "https://fhir.nhs.uk/StructureDefinition/Extension-EPS-RepeatInformation",
                "extension": [
                    {"url": "numberOfRepeatsIssued", "valueInteger": int(record.get("issue") or 1)},
                    {
                        "url": "numberOfRepeatsAllowed",
                        "valueInteger": int(record["repeatsAllowed"]),
                    },
                ],
            }
        ]
    if record.get("dispenser"):
        task["owner"] = {
            "identifier": {
                "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                "value": record["dispenser"],
            }
        }
    return task


def _line_display(code: str) -> str:
    return next((s.display for s in LineItemStatus if s.code == code), code)


#: The permission each message event needs beyond the route's (an unknown event is a 400).
EVENT_PERMISSIONS: Final[Mapping[str, Permission]] = {
    "prescription-order": Permission.EPS_PRESCRIPTION_PRESCRIBE,
    "prescription-order-update": Permission.EPS_PRESCRIPTION_PRESCRIBE,
    "dispense-notification": Permission.EPS_PRESCRIPTION_DISPENSE,
}


def _event(bundle: Mapping[str, Any]) -> str | None:
    for entry in bundle.get("entry", []) if isinstance(bundle.get("entry"), list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "MessageHeader":
            code = (resource.get("eventCoding") or {}).get("code")
            return str(code) if code else None
    return None


class EpsService:
    def __init__(self, store: Store, *, today: Any = None, expiry_days: int = 180) -> None:
        self._store = store
        self._directory = DirectoryRecords(store)
        self.today: Callable[[], date] = today or (lambda: datetime.now(UTC).date())
        self._expiry_days = expiry_days

    def _today(self) -> date:
        return self.today()

    async def prepare(self, principal: Principal, body: bytes, context: AuditContext) -> bytes:
        order = parse_order(_bundle(body))
        if await self._store.get(PRESCRIPTION, order.prescription_id) is not None:
            raise DuplicatePrescriptionId("A prescription with the same ID already exists.")
        await self._audit(
            AuditAction.EPS_PRESCRIPTION_PREPARE, AuditOutcome.SUCCESS, principal, context, order
        )
        timestamp = datetime.now(UTC).isoformat(timespec="seconds")
        return orjson.dumps(prepare_parameters(content_digest(order.signed_content()), timestamp))

    async def process_message(
        self, principal: Principal, body: bytes, context: AuditContext, fingerprint: str
    ) -> WrittenResponse:
        bundle = _bundle(body)
        event = _event(bundle)
        needed = EVENT_PERMISSIONS.get(event or "")
        if needed is not None and not principal.can(needed):
            raise Forbidden(f"Your role does not permit this action ({needed.value})")
        if event == "prescription-order-update":
            return await self._cancel(principal, bundle, context, fingerprint)
        if event == "dispense-notification":
            notice = parse_notification(bundle)
            self._own_organisation(principal, notice.dispenser_ods)
            return await self._change(
                principal,
                notice.prescription_id,
                lambda record: apply_notification(record, notice),
                AuditAction.EPS_PRESCRIPTION_DISPENSE,
                "eps.prescription.dispensed",
                context,
                fingerprint,
            )
        if event != "prescription-order":
            raise UnsupportedMessage(
                f"MessageHeader.eventCoding.code '{str(event)[:40]}' is not supported by this"
                " server yet; prescription-order is",
                expression=["MessageHeader.eventCoding.code"],
            )
        order = parse_order(bundle)

        async def prepare() -> PreparedWrite:
            await self._check_patient(order, bundle)
            await self._check_signature(order)
            if await self._store.get(PRESCRIPTION, order.prescription_id) is not None:
                raise DuplicatePrescriptionId("A prescription with the same ID already exists.")
            record = self._record(order, bundle)
            put = PutResource(
                PRESCRIPTION,
                order.prescription_id,
                1,
                orjson.dumps(record),
                None,
                search_keys=prescription_keys(record),
            )
            audit = audit_record(
                action=AuditAction.EPS_PRESCRIPTION_CREATE,
                outcome=AuditOutcome.SUCCESS,
                principal=principal,
                context=context,
                patients=[order.patient_nhs_number],
                resources=[f"{PRESCRIPTION}/{order.prescription_id}"],
                detail=f"status {record['status']}",
            )
            created = OutboxMessage(
                "eps.prescription.created",
                order.prescription_id,
                orjson.dumps(
                    {
                        "prescriptionId": order.prescription_id,
                        "status": record["status"],
                        "performer": order.performer_ods,
                    }
                ),
            )
            answer = orjson.dumps(
                {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "information", "code": "informational"}],
                }
            )
            return PreparedWrite(
                WriteSet(puts=[put], audit=[audit], outbox=[created]),
                WrittenResponse(200, answer),
            )

        try:
            return await run_idempotent(
                self._store, principal, context.request_id, fingerprint, prepare
            )
        except AlreadyExists:  # the same ID sent twice at once: the other request won
            raise DuplicatePrescriptionId(
                "A prescription with the same ID already exists."
            ) from None

    async def _cancel(
        self,
        principal: Principal,
        bundle: Mapping[str, Any],
        context: AuditContext,
        fingerprint: str,
    ) -> WrittenResponse:
        request = parse_cancel(bundle)

        async def prepare() -> PreparedWrite:
            stored = await self._store.get(PRESCRIPTION, request.prescription_id)
            if stored is None:
                raise PrescriptionNotFound()
            record = orjson.loads(stored.body)
            if request.patient_nhs_number not in (None, record["patient"]):
                raise CancellationMismatch()
            decision = decide(record, request)
            if decision.code == "R-0008":
                raise PrescriptionNotFound()
            timestamp = datetime.now(UTC).isoformat(timespec="seconds")
            writes = WriteSet(
                audit=[
                    audit_record(
                        action=AuditAction.EPS_PRESCRIPTION_CANCEL,
                        outcome=AuditOutcome.SUCCESS,
                        principal=principal,
                        context=context,
                        patients=[record["patient"]],
                        resources=[f"{PRESCRIPTION}/{request.prescription_id}"],
                        detail=decision.code,
                    )
                ]
            )
            if decision.record is not None:
                writes.puts.append(_next_version(stored, decision.record))
                writes.outbox.append(
                    OutboxMessage(
                        "eps.prescription.cancelled"
                        if decision.cancelled
                        else "eps.prescription.cancellation-pending",
                        request.prescription_id,
                        orjson.dumps(
                            {
                                "prescriptionId": request.prescription_id,
                                "item": request.item_id,
                                "code": decision.code,
                                "status": decision.record["status"],
                            }
                        ),
                    )
                )
            answer = orjson.dumps(response_bundle(request, decision.code, timestamp))
            return PreparedWrite(writes, WrittenResponse(200, answer))

        return await self._decided_again_on_conflict(principal, context, fingerprint, prepare)

    # -- dispensing: return, withdraw, dispense notification, tracker --------------------------

    @staticmethod
    def _own_organisation(principal: Principal, ods: str | None) -> str:
        if principal.ods_code is None or (ods is not None and ods != principal.ods_code.upper()):
            raise Forbidden("A dispenser acts only for its own organisation")
        return principal.ods_code.upper()

    async def task(
        self, principal: Principal, body: bytes, context: AuditContext, fingerprint: str
    ) -> WrittenResponse:
        request = parse_task(_bundle_or_parameters(body))
        dispenser = self._own_organisation(principal, request.owner_ods)

        def change(record: dict[str, Any]) -> dict[str, Any]:
            if request.nhs_number not in (None, record["patient"]):
                raise InvalidValue("Task.for does not match the prescription's patient")
            if request.kind == "return":
                return return_prescription(record, dispenser)
            return withdraw(record, dispenser, request.focus)

        return await self._change(
            principal,
            request.prescription_id,
            change,
            AuditAction.EPS_PRESCRIPTION_RETURN
            if request.kind == "return"
            else AuditAction.EPS_PRESCRIPTION_WITHDRAW,
            f"eps.prescription.{'returned' if request.kind == 'return' else 'withdrawn'}",
            context,
            fingerprint,
        )

    async def claim(
        self, principal: Principal, body: bytes, context: AuditContext, fingerprint: str
    ) -> WrittenResponse:
        request = parse_claim(_bundle_or_parameters(body))
        dispenser = self._own_organisation(principal, request.provider_ods)
        return await self._change(
            principal,
            request.prescription_id,
            lambda record: apply_claim(record, request, dispenser),
            AuditAction.EPS_PRESCRIPTION_CLAIM,
            "eps.prescription.claimed",
            context,
            fingerprint,
        )

    async def _decided_again_on_conflict(
        self,
        principal: Principal,
        context: AuditContext,
        fingerprint: str,
        prepare: Callable[[], Awaitable[PreparedWrite]],
    ) -> WrittenResponse:
        """Run an idempotent prescription change; when another change to the prescription won
        the race, decide again on the new version (up to ``MAX_CONFLICT_RETRIES`` times)."""
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                return await run_idempotent(
                    self._store, principal, context.request_id, fingerprint, prepare
                )
            except VersionConflict:
                continue
        raise ServiceUnavailable("The prescription is busy; retry", headers={"Retry-After": "1"})

    async def _change(
        self,
        principal: Principal,
        prescription_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        action: AuditAction,
        topic: str,
        context: AuditContext,
        fingerprint: str,
    ) -> WrittenResponse:
        """Apply ``change`` to a stored prescription by a conditional write, retried on races."""

        async def prepare() -> PreparedWrite:
            stored = await self._store.get(PRESCRIPTION, prescription_id)
            if stored is None:
                raise ResourceNotFound("Prescription not found")
            record = orjson.loads(stored.body)
            changed = change(record)
            writes = _status_change(stored, record, changed, action, topic, principal, context)
            return PreparedWrite(writes, WrittenResponse(200, _INFORMATIONAL))

        return await self._decided_again_on_conflict(principal, context, fingerprint, prepare)

    async def track(
        self,
        principal: Principal,
        prescription_id: str | None,
        nhs_number: str | None,
        context: AuditContext,
    ) -> bytes:
        """The tracker: Task resources for one prescription, or for a patient's prescriptions."""
        if prescription_id:
            ids = [prescription_id]
        elif nhs_number:
            prefix = f"{nhs_number}|"
            rows = await self._store.scan_index(
                PRESCRIPTION, "rxpatient", prefix, prefix + "~", 100
            )
            ids = [value.split("|", 1)[1] for _, value in rows]
        else:
            raise MissingValue("Give group-identifier (prescription ID) or patient:identifier")
        tasks = []
        patients = set()
        for found in await self._store.get_many(PRESCRIPTION, ids):
            record = orjson.loads(found.body)
            if nhs_number and record["patient"] != nhs_number:
                continue
            patients.add(record["patient"])
            tasks.append(tracker_task(record))
        await self._store.write(
            WriteSet(
                audit=[
                    audit_record(
                        action=AuditAction.EPS_PRESCRIPTION_TRACK,
                        outcome=AuditOutcome.SUCCESS,
                        principal=principal,
                        context=context,
                        patients=sorted(patients),
                        resources=[
                            f"{PRESCRIPTION}/{t['groupIdentifier']['value']}" for t in tasks
                        ],
                    )
                ]
            )
        )
        return orjson.dumps(_searchset(tasks))

    # -- scheduled: future instances become due, prescriptions expire ---------------------------

    async def run_due(self, context: AuditContext, batch: int = 500) -> tuple[int, int]:
        """Activate future-dated prescriptions whose day has come; expire those past expiry
        (with a dispenser and partly dispensed, what was dispensed stands: Dispensed)."""
        today = self._today().isoformat()
        activated = expired = 0
        due = await self._store.scan_index(PRESCRIPTION, "rxactivate", "", f"{today}|~", batch)
        for _, value in due:
            if await self._scheduled(value.split("|", 1)[1], Event.ACTIVATE, context):
                activated += 1
        due = await self._store.scan_index(PRESCRIPTION, "rxexpire", "", f"{today}|~", batch)
        for _, value in due:
            if await self._scheduled(value.split("|", 1)[1], Event.EXPIRE, context):
                expired += 1
        return activated, expired

    async def _scheduled(self, prescription_id: str, event: Event, context: AuditContext) -> bool:
        for _ in range(MAX_CONFLICT_RETRIES):
            stored = await self._store.get(PRESCRIPTION, prescription_id)
            if stored is None:
                return False
            record = orjson.loads(stored.body)
            try:
                status = next_status(PrescriptionStatus.from_code(record["status"]), event)
            except InvalidStateTransition:
                return False  # changed since it was queued
            items = record["items"]
            if event is Event.EXPIRE:
                open_items = {
                    LineItemStatus.TO_BE_DISPENSED.code,
                    LineItemStatus.WITH_DISPENSER.code,
                }
                items = [
                    {**i, "status": LineItemStatus.EXPIRED.code} if i["status"] in open_items else i
                    for i in items
                ]
            changed = {**record, "status": status.code, "items": items}
            action = (
                AuditAction.EPS_PRESCRIPTION_EXPIRE
                if event is Event.EXPIRE
                else AuditAction.EPS_PRESCRIPTION_ACTIVATE
            )
            topic = f"eps.prescription.{'expired' if event is Event.EXPIRE else 'activated'}"
            writes = _status_change(stored, record, changed, action, topic, None, context)
            try:
                await self._store.write(writes)
            except VersionConflict:
                continue
            return True
        return False

    # -- signature verification ------------------------------------------------------------------

    async def verify_signatures(
        self, principal: Principal, body: bytes, context: AuditContext
    ) -> bytes:
        """``$verify-signature``: each prescription message of a searchset, checked as
        ``$process-message`` would check it; one result per message."""
        searchset = _bundle(body)
        if searchset.get("resourceType") != "Bundle" or searchset.get("type") != "searchset":
            raise InvalidValue("Expected a searchset Bundle of prescription messages")
        entries = searchset.get("entry") if isinstance(searchset.get("entry"), list) else []
        parts = []
        patients: set[str] = set()
        for index, entry in enumerate(entries or []):
            message = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(message, dict):
                continue
            identifier = (message.get("identifier") or {}).get("value")
            try:
                order = parse_order(message, intents=RELEASED_INTENTS)
                patients.add(order.patient_nhs_number)
                await self._check_signature(order)
                issue: dict[str, Any] = {"severity": "information", "code": "informational"}
            except SpineError as exc:
                issue = {
                    "severity": "error",
                    "code": "invalid",
                    "details": {
                        "coding": [
                            {
                                "system": "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode",
                                "code": "INVALID_VALUE",
                                "display": "Signature is invalid.",
                            }
                        ]
                    },
                    "diagnostics": exc.diagnostics or exc.display,
                    "expression": ["Provenance.signature.data"],
                }
            parts.append(
                {
                    "name": str(index),
                    "part": [
                        {
                            "name": "messageIdentifier",
                            "valueReference": {
                                "identifier": {
                                    "system": "https://tools.ietf.org/html/rfc4122",
                                    "value": identifier,
                                }
                            },
                        },
                        {
                            "name": "result",
                            "resource": {"resourceType": "OperationOutcome", "issue": [issue]},
                        },
                    ],
                }
            )
        await self._store.write(
            WriteSet(
                audit=[
                    audit_record(
                        action=AuditAction.EPS_SIGNATURE_VERIFY,
                        outcome=AuditOutcome.SUCCESS,
                        principal=principal,
                        context=context,
                        patients=sorted(patients),
                        detail=f"{len(parts)} messages checked",
                    )
                ]
            )
        )
        return orjson.dumps({"resourceType": "Parameters", "parameter": parts})

    # -- dispensing: release ---------------------------------------------------------------------

    async def release(
        self, principal: Principal, body: bytes, context: AuditContext, fingerprint: str
    ) -> WrittenResponse:
        request = parse_release(_bundle_or_parameters(body))
        if principal.ods_code is None or principal.ods_code.upper() != request.owner_ods:
            raise Forbidden("A dispenser can only release prescriptions to its own organisation")

        async def prepare() -> PreparedWrite:
            if request.prescription_id is not None:
                ids = [request.prescription_id]
            else:
                prefix = f"{request.owner_ods}|"
                rows = await self._store.scan_index(
                    PRESCRIPTION, "rxready", prefix, prefix + "~", NOMINATED_BATCH
                )
                ids = [value.split("|", 1)[1] for _, value in rows]
            writes = WriteSet()
            passed: list[Mapping[str, Any]] = []
            patients: list[str] = []
            for prescription_id in ids:
                stored = await self._store.get(PRESCRIPTION, prescription_id)
                if stored is None:
                    if request.prescription_id is not None:
                        raise ResourceNotFound()
                    continue
                record = orjson.loads(stored.body)
                try:
                    released = release(record, request.owner_ods)
                except WithAnotherDispenser as exc:
                    if request.prescription_id is not None:
                        raise WithAnotherDispenserError(exc.dispenser) from None
                    continue
                except NotReleasable as exc:
                    if request.prescription_id is not None:
                        raise InvalidStateTransition(
                            f"A prescription that is '{exc.status.display}' cannot be released"
                        ) from None
                    continue
                if released.record is not None:
                    writes.puts.append(_next_version(stored, released.record))
                    writes.outbox.append(
                        OutboxMessage(
                            "eps.prescription.released",
                            prescription_id,
                            orjson.dumps(
                                {"prescriptionId": prescription_id, "dispenser": request.owner_ods}
                            ),
                        )
                    )
                passed.append(released.bundle)
                patients.append(record["patient"])
            writes.audit.append(
                audit_record(
                    action=AuditAction.EPS_PRESCRIPTION_RELEASE,
                    outcome=AuditOutcome.SUCCESS,
                    principal=principal,
                    context=context,
                    patients=sorted(set(patients)),
                    resources=[f"{PRESCRIPTION}/{p}" for p in ids],
                    detail=f"{len(passed)} released to {request.owner_ods}",
                )
            )
            answer = {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "passedPrescriptions", "resource": _searchset(passed)},
                    {"name": "failedPrescriptions", "resource": _searchset([])},
                ],
            }
            return PreparedWrite(writes, WrittenResponse(200, orjson.dumps(answer)))

        return await self._decided_again_on_conflict(principal, context, fingerprint, prepare)

    async def _check_patient(self, order: PrescriptionOrder, bundle: Mapping[str, Any]) -> None:
        """The patient must be a living patient PDS knows (the message may also say they died)."""
        stated_dead = any(
            isinstance(e, dict)
            and isinstance(e.get("resource"), dict)
            and e["resource"].get("resourceType") == "Patient"
            and e["resource"].get("deceasedDateTime")
            for e in bundle.get("entry", [])
        )
        stored = await self._store.get(PATIENT, order.patient_nhs_number)
        if stored is None or stored.state is not ResourceState.ACTIVE:
            raise InvalidValue(
                "The patient's NHS number is not that of an active PDS record",
                expression=["Patient.identifier"],
            )
        if stated_dead or orjson.loads(stored.body).get("deceasedDateTime"):
            raise PatientDeceased("Prescriptions cannot be issued for a deceased patient")

    async def _check_signature(self, order: PrescriptionOrder) -> None:
        profile = await self._directory.get(RoleProfile, order.role_profile_id)
        registered = None
        same_user = profile is not None and order.user_id in (None, profile.user_id)
        if profile is not None and same_user and profile.signing_certificate:
            registered = x509.load_pem_x509_certificate(profile.signing_certificate.encode())
        verify_signature(
            order.signature_data,
            expected_digest=content_digest(order.signed_content()),
            registered_certificate=registered,
        )

    def _record(self, order: PrescriptionOrder, bundle: Mapping[str, Any]) -> dict[str, Any]:
        start = order.validity_start
        first_day = date.fromisoformat(str(start)[:10]) if start is not None else self._today()
        future = first_day > self._today()
        status = PrescriptionStatus.FUTURE_DATED if future else PrescriptionStatus.TO_BE_DISPENSED
        return {
            "prescriptionId": order.prescription_id,
            "longFormId": order.long_form_id,
            "patient": order.patient_nhs_number,
            "prescriber": {"user": order.user_id, "roleProfile": order.role_profile_id},
            "organisation": order.organisation_ods,
            "treatment": order.treatment,
            "performer": order.performer_ods,
            "validityStart": start,
            "status": status.code,
            "issue": 1,
            "repeatsAllowed": order.repeats_allowed,
            "items": [
                {
                    "identifier": item.identifier,
                    "status": LineItemStatus.TO_BE_DISPENSED.code,
                    "quantity": item.quantity,
                    "daysSupply": item.days_supply,
                }
                for item in order.items
            ],
            "createdAt": datetime.now(UTC).isoformat(timespec="seconds"),
            "expiresOn": (first_day + timedelta(days=self._expiry_days)).isoformat(),
            "bundle": bundle,
        }

    async def _audit(
        self,
        action: AuditAction,
        outcome: AuditOutcome,
        principal: Principal,
        context: AuditContext,
        order: PrescriptionOrder,
    ) -> None:
        event = audit_record(
            action=action,
            outcome=outcome,
            principal=principal,
            context=context,
            patients=[order.patient_nhs_number],
            resources=[f"{PRESCRIPTION}/{order.prescription_id}"],
        )
        await self._store.write(WriteSet(audit=[event]))
