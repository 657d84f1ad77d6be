"""PDS use cases. Every read, search and change is audited in the commit of its outcome."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import orjson
from nhs_number.validate import calculate_checksum

from openspine.pds import views
from openspine.pds.creation import CreateRequest, parse_create
from openspine.pds.demographics import (
    DOB_FAMILY,
    DOB_SOUNDEX,
    FAMILY_DOB,
    HISTORIC,
    Demographics,
    demographics,
    search_keys,
)
from openspine.pds.domain import MAX_SUPERSEDED_HOPS, is_valid_nhs_number, sees_restricted_fields
from openspine.pds.errors import InvalidNhsNumber, PatientInvalidated, PatientNotFound
from openspine.pds.fhir import encode, is_restricted, restricted_view, with_hidden_fields
from openspine.pds.matching import Match, score
from openspine.pds.patching import apply_patches, changed_fields
from openspine.pds.ports import PATIENT, RELATED_PERSONS
from openspine.pds.search_query import SearchQuery
from openspine.platform.audit.events import AuditAction, AuditContext, AuditOutcome, audit_record
from openspine.platform.errors import (
    Forbidden,
    InvalidRequest,
    PreconditionFailed,
    ResourceVersionMismatch,
    ServiceUnavailable,
    operation_outcome,
)
from openspine.platform.idempotency import PreparedWrite, WrittenResponse, run_idempotent
from openspine.platform.normalise import phonetic
from openspine.platform.security.principal import AccessMode, Principal
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

__all__ = ["PatientView", "PdsService", "SearchOutcome", "patient_put"]

#: Index rows a search may scan, and records it may score; beyond them it is TOO_MANY_MATCHES.
SCAN_LIMIT: Final = 20_000
SCORE_LIMIT: Final = 2_000
#: A date-of-birth range up to this many days is scanned by date first, wider ones by name.
DOB_FIRST_MAX_DAYS: Final = 31
#: Change events for the notifications service: element changed → topic.
CHANGE_TOPICS: Final = {
    "address": "pds.patient.address-changed",
    "generalPractitioner": "pds.patient.gp-changed",
    "deceasedDateTime": "pds.patient.death-notified",
    "name": "pds.patient.name-changed",
}
_IF_MATCH_PREFIX: Final = 'W/"'


@dataclass(frozen=True, slots=True)
class PatientView:
    """A patient as this caller may see it: stored bytes, untouched."""

    body: bytes
    version: int

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    body: bytes
    matches: tuple[Match, ...]


def patient_put(
    resource: dict[str, Any],
    *,
    expected_version: int | None,
    today: str,
    state: ResourceState = ResourceState.ACTIVE,
    successor_id: str | None = None,
) -> PutResource:
    """A Patient write with its restricted copy and its search keys."""
    return PutResource(
        resource_type=PATIENT,
        id=str(resource["id"]),
        version=int(resource["meta"]["versionId"]),
        body=encode(resource),
        restricted_body=encode(restricted_view(resource)) if is_restricted(resource) else None,
        expected_version=expected_version,
        state=state,
        successor_id=successor_id,
        search_keys=search_keys(demographics(resource, today)),
    )


def _today() -> date:
    return datetime.now(UTC).date()


class PdsService:
    def __init__(self, store: Store, *, base_url: str, today: Callable[[], date] = _today) -> None:
        self._store = store
        self._base_url = base_url.rstrip("/")
        self._today = today

    # -- read --------------------------------------------------------------------------------

    async def read_patient(
        self, principal: Principal, nhs_number: str, context: AuditContext
    ) -> PatientView:
        record = await self._active_record(
            principal, nhs_number, context, AuditAction.PDS_PATIENT_READ
        )
        patients = [nhs_number] if record.id == nhs_number else [nhs_number, record.id]
        restricted = record.restricted_body is not None and not sees_restricted_fields(
            principal, record.id
        )
        await self._audit(
            AuditAction.PDS_PATIENT_READ,
            AuditOutcome.SUCCESS,
            principal,
            context,
            patients,
            "restricted-view" if restricted else None,
        )
        body = record.restricted_body if restricted and record.restricted_body else record.body
        return PatientView(body, record.version)

    async def related_persons(
        self, principal: Principal, nhs_number: str, context: AuditContext
    ) -> bytes:
        """RelatedPerson searchset; empty for a restricted patient (PDS FHIR specification)."""
        record = await self._active_record(
            principal, nhs_number, context, AuditAction.PDS_RELATED_PERSON_READ
        )
        people: list[dict[str, Any]] = []
        if record.restricted_body is None or sees_restricted_fields(principal, record.id):
            stored = await self._store.get(RELATED_PERSONS, record.id)
            people = orjson.loads(stored.body) if stored is not None else []
        await self._audit(
            AuditAction.PDS_RELATED_PERSON_READ,
            AuditOutcome.SUCCESS,
            principal,
            context,
            [record.id],
        )
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "total": len(people),
        }
        if people:
            bundle["entry"] = [
                {
                    "fullUrl": f"{self._base_url}/Patient/{record.id}/RelatedPerson/{p['id']}",
                    "resource": p,
                }
                for p in people
            ]
        return orjson.dumps(bundle)

    async def _active_record(
        self, principal: Principal, nhs_number: str, context: AuditContext, action: AuditAction
    ) -> StoredResource:
        if not is_valid_nhs_number(nhs_number):
            raise InvalidNhsNumber()
        if principal.mode is AccessMode.PATIENT and principal.nhs_number != nhs_number:
            await self._audit(action, AuditOutcome.DENIED, principal, context, [nhs_number])
            raise Forbidden("A patient can only access their own record")
        record = await self._resolve(nhs_number)
        if record is None or record.state is ResourceState.SUPERSEDED:
            await self._audit(
                action, AuditOutcome.FAILURE, principal, context, [nhs_number], "not-found"
            )
            raise PatientNotFound()
        if record.state is ResourceState.INVALIDATED:
            await self._audit(
                action, AuditOutcome.FAILURE, principal, context, [nhs_number], "invalidated"
            )
            raise PatientInvalidated()
        return record

    async def _resolve(self, nhs_number: str) -> StoredResource | None:
        """The record for ``nhs_number``, following superseded records to their survivor."""
        record = await self._store.get(PATIENT, nhs_number)
        hops = 0
        while (
            record is not None
            and record.state is ResourceState.SUPERSEDED
            and record.successor_id is not None
            and hops < MAX_SUPERSEDED_HOPS
        ):
            record = await self._store.get(PATIENT, record.successor_id)
            hops += 1
        return record

    async def _audit(
        self,
        action: AuditAction,
        outcome: AuditOutcome,
        principal: Principal | None,
        context: AuditContext,
        patients: Sequence[str],
        detail: str | None = None,
    ) -> None:
        event = audit_record(
            action=action,
            outcome=outcome,
            principal=principal,
            context=context,
            patients=patients,
            detail=detail,
        )
        await self._store.write(WriteSet(audit=[event]))

    # -- search ------------------------------------------------------------------------------

    async def search(
        self, principal: Principal, query: SearchQuery, context: AuditContext
    ) -> SearchOutcome:
        if principal.mode is AccessMode.PATIENT:
            raise Forbidden("Patient access mode cannot search PDS")
        ids = await self._candidates(query)
        too_many = ids is None or len(ids) > SCORE_LIMIT
        matches: dict[str, tuple[Match, StoredResource]] = {}
        if not too_many and ids:
            matches = await self._score(query, ids)
        found = sorted(matches.values(), key=lambda m: (-m[0].score, m[0].nhs_number))
        if query.exact:
            found = [m for m in found if m[0].score == 1.0]
        if too_many or len(found) > query.max_results:
            await self._audit(
                AuditAction.PDS_PATIENT_SEARCH,
                AuditOutcome.SUCCESS,
                principal,
                context,
                [],
                "too-many-matches",
            )
            body = operation_outcome(
                code="TOO_MANY_MATCHES",
                display="Too Many Matches",
                issue_type="multiple-matches",
                severity="information",
                diagnostics=None,
            )
            return SearchOutcome(body, ())
        entries = []
        for match, record in found:
            resource = orjson.loads(record.body)
            restricted = record.restricted_body is not None
            entries.append((views.search_view(resource, restricted=restricted), match.score))
        await self._audit(
            AuditAction.PDS_PATIENT_SEARCH,
            AuditOutcome.SUCCESS,
            principal,
            context,
            [m.nhs_number for m, _ in found],
            f"{len(found)} returned",
        )
        return SearchOutcome(views.searchset(self._base_url, entries), tuple(m for m, _ in found))

    async def _scan(
        self, params: Sequence[str], low: str, high: str
    ) -> list[tuple[str, str]] | None:
        rows: list[tuple[str, str]] = []
        for param in params:
            found = await self._store.scan_index(PATIENT, param, low, high, SCAN_LIMIT + 1)
            if len(found) > SCAN_LIMIT:
                return None
            rows.extend(found)
        return rows

    async def _candidates(self, q: SearchQuery) -> set[str] | None:
        """Ids that can match, from the index alone; ``None`` when there are too many to score."""
        assert q.birth is not None  # every accepted search has a date of birth
        birth = q.birth
        if q.fuzzy:
            names = [q.family.value] if q.family else []
            names += [g.value for g in q.given]
            codes = {phonetic(part) for n in names for part in n.split()} - {""}
            if birth.exact:
                found: set[str] = set()
                for code in sorted(codes):
                    rows = await self._scan(
                        [DOB_SOUNDEX], f"{birth.low}|{code}", f"{birth.low}|{code}"
                    )
                    if rows is None:
                        return None
                    found.update(i for i, _ in rows)
                return found
            rows = await self._scan([DOB_SOUNDEX], f"{birth.low}|", f"{birth.high}|~")
            if rows is None:
                return None
            return {i for i, v in rows if v.split("|", 1)[1] in codes}
        assert q.family is not None
        suffixes = ["", HISTORIC] if q.history else [""]
        family = q.family
        prefix = family.prefix if family.wildcard else family.value
        span = (date.fromisoformat(birth.high) - date.fromisoformat(birth.low)).days
        if birth.low != "0000-01-01" and birth.high != "9999-12-31" and span <= DOB_FIRST_MAX_DAYS:
            high_family = prefix + "~" if family.wildcard else prefix
            rows = await self._scan(
                [DOB_FAMILY + s for s in suffixes],
                f"{birth.low}|{prefix}",
                f"{birth.high}|{high_family}",
            )
            if rows is None:
                return None
            pairs = [v.split("|", 1) for _, v in rows]
            return {
                i
                for (i, _), (dob, fam) in zip(rows, pairs, strict=True)
                if birth.contains(dob) and family.matches(fam)
            }
        if family.wildcard:
            low, high = prefix, prefix + "~"
        else:
            low, high = f"{prefix}|{birth.low}", f"{prefix}|{birth.high}"
        rows = await self._scan([FAMILY_DOB + s for s in suffixes], low, high)
        if rows is None:
            return None
        pairs = [v.rsplit("|", 1) for _, v in rows]
        return {
            i
            for (i, _), (fam, dob) in zip(rows, pairs, strict=True)
            if birth.contains(dob) and family.matches(fam)
        }

    async def _score(
        self, q: SearchQuery, ids: set[str]
    ) -> dict[str, tuple[Match, StoredResource]]:
        today = self._today().isoformat()
        best: dict[str, tuple[Match, StoredResource]] = {}
        for record in await self._store.get_many(PATIENT, sorted(ids)):
            facts: Demographics = demographics(orjson.loads(record.body), today)
            match = score(q, facts)
            if match is None:
                continue
            survivor = record
            if record.state is not ResourceState.ACTIVE:
                resolved = await self._resolve(record.id)
                if resolved is None or resolved.state is not ResourceState.ACTIVE:
                    continue  # invalidated, not superseded: never returned
                survivor = resolved
                match = Match(survivor.id, match.score, match.components)
            if survivor.restricted_body is not None and q.location_sensitive:
                continue
            held = best.get(survivor.id)
            if held is None or held[0].score < match.score:
                best[survivor.id] = (match, survivor)
        return best

    # -- update ------------------------------------------------------------------------------

    async def update_patient(
        self,
        principal: Principal,
        nhs_number: str,
        if_match: str | None,
        body: bytes,
        context: AuditContext,
        request_fingerprint: str,
    ) -> WrittenResponse:
        if not is_valid_nhs_number(nhs_number):
            raise InvalidNhsNumber()
        expected = _parse_if_match(if_match)
        try:
            patch_body = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("The request body is not valid JSON") from None

        async def prepare() -> PreparedWrite:
            record = await self._active_record(
                principal, nhs_number, context, AuditAction.PDS_PATIENT_UPDATE
            )
            if record.version != expected:
                raise ResourceVersionMismatch()
            current = orjson.loads(record.body)
            restricted = record.restricted_body is not None and not sees_restricted_fields(
                principal, record.id
            )
            today = self._today()
            # A caller who sees the restricted copy patches what they saw (its list indexes);
            # the hidden location data is put back unchanged afterwards.
            visible = (
                orjson.loads(record.restricted_body)
                if restricted and record.restricted_body is not None
                else current
            )
            patched = apply_patches(
                visible,
                patch_body,
                patient_mode=principal.mode is AccessMode.PATIENT,
                restricted=restricted,
                today=today,
            )
            resource = (
                with_hidden_fields(current, patched.resource) if restricted else patched.resource
            )
            changed = changed_fields(current, resource)
            version = record.version + 1
            resource["meta"] = {**resource.get("meta", {}), "versionId": str(version)}
            put = patient_put(resource, expected_version=record.version, today=today.isoformat())
            outbox = [
                OutboxMessage(
                    topic=CHANGE_TOPICS[field],
                    key=record.id,
                    payload=orjson.dumps(
                        {"nhsNumber": record.id, "version": version, "element": field}
                    ),
                )
                for field in sorted(changed)
                if field in CHANGE_TOPICS
            ]
            audit = audit_record(
                action=AuditAction.PDS_PATIENT_UPDATE,
                outcome=AuditOutcome.SUCCESS,
                principal=principal,
                context=context,
                patients=[record.id],
                detail="changed: " + ",".join(sorted(changed)),
            )
            shown = put.restricted_body if restricted and put.restricted_body else put.body
            return PreparedWrite(
                WriteSet(puts=[put], audit=[audit], outbox=outbox),
                WrittenResponse(200, shown, {"ETag": f'W/"{version}"'}),
            )

        try:
            return await run_idempotent(
                self._store, principal, context.request_id, request_fingerprint, prepare
            )
        except VersionConflict:
            raise ResourceVersionMismatch() from None

    # -- create ------------------------------------------------------------------------------

    async def create_patient(
        self, principal: Principal, body: bytes, context: AuditContext, request_fingerprint: str
    ) -> WrittenResponse:
        if principal.mode is not AccessMode.HEALTHCARE_WORKER:
            raise Forbidden("Only a healthcare worker can create a patient record")
        request = parse_create(body, self._today())

        async def prepare() -> PreparedWrite:
            duplicates = await self._duplicates(request)
            if duplicates:
                return self._duplicate_answer(principal, context, duplicates)
            for _ in range(20):
                nhs_number = _allocate_nhs_number()
                if await self._store.get(PATIENT, nhs_number) is None:
                    break
            else:  # pragma: no cover - 20 collisions in a 10^8 space
                raise AlreadyExists("no free NHS number found")
            resource = request.resource(nhs_number)
            put = patient_put(resource, expected_version=None, today=self._today().isoformat())
            audit = audit_record(
                action=AuditAction.PDS_PATIENT_CREATE,
                outcome=AuditOutcome.SUCCESS,
                principal=principal,
                context=context,
                patients=[nhs_number],
            )
            outbox = OutboxMessage(
                "pds.patient.created", nhs_number, orjson.dumps({"nhsNumber": nhs_number})
            )
            return PreparedWrite(
                WriteSet(puts=[put], audit=[audit], outbox=[outbox]),
                WrittenResponse(
                    201,
                    put.body,
                    {"ETag": 'W/"1"', "Location": f"{self._base_url}/Patient/{nhs_number}"},
                ),
            )

        for _ in range(3):
            try:
                return await run_idempotent(
                    self._store, principal, context.request_id, request_fingerprint, prepare
                )
            except AlreadyExists:
                continue  # the number drawn was taken at the same moment: draw another
        raise ServiceUnavailable(
            "No NHS number could be allocated; retry", headers={"Retry-After": "1"}
        )

    async def _duplicates(self, request: CreateRequest) -> list[str]:
        query = request.duplicate_query()
        ids = await self._candidates(query)
        if ids is None:
            return ["many", "more"]
        matches = await self._score(query, ids)
        return sorted(nhs for nhs, (m, _) in matches.items() if m.score >= request.DUPLICATE_SCORE)

    def _duplicate_answer(
        self, principal: Principal, context: AuditContext, duplicates: list[str]
    ) -> PreparedWrite:
        single = len(duplicates) == 1
        body = operation_outcome(
            code="SINGLE_MATCH" if single else "MULTIPLE_MATCHES",
            display="Single match found" if single else "Multiple matches found",
            issue_type="value",
            severity="error",
            diagnostics=(
                f"Unable to create new patient. NHS number {duplicates[0]} found for supplied"
                " demographic data."
                if single
                else "Unable to create new patient. Multiple matches found for supplied"
                " demographic data."
            ),
        )
        audit = audit_record(
            action=AuditAction.PDS_PATIENT_CREATE,
            outcome=AuditOutcome.FAILURE,
            principal=principal,
            context=context,
            patients=duplicates if single else [],
            detail="single-match" if single else "multiple-matches",
        )
        return PreparedWrite(WriteSet(audit=[audit]), WrittenResponse(200, body))

    # -- operator actions: merge and invalidate ------------------------------------------------

    async def merge(
        self, superseded: str, survivor: str, context: AuditContext, operator: str
    ) -> None:
        """Mark ``superseded`` as a duplicate of ``survivor``; reads and searches follow it."""
        if superseded == survivor:
            raise InvalidRequest("A record cannot supersede itself")
        old = await self._operable(superseded)
        new = await self._operable(survivor)
        resource = orjson.loads(old.body)
        version = old.version + 1
        resource["meta"] = {**resource.get("meta", {}), "versionId": str(version)}
        put = patient_put(
            resource,
            expected_version=old.version,
            today=self._today().isoformat(),
            state=ResourceState.SUPERSEDED,
            successor_id=new.id,
        )
        audit = audit_record(
            action=AuditAction.PDS_PATIENT_MERGE,
            outcome=AuditOutcome.SUCCESS,
            principal=None,
            context=context,
            patients=[superseded, survivor],
            detail=f"superseded by operator {operator}",
        )
        event = OutboxMessage(
            "pds.patient.merged",
            superseded,
            orjson.dumps({"nhsNumber": superseded, "supersededBy": survivor}),
        )
        await self._store.write(WriteSet(puts=[put], audit=[audit], outbox=[event]))

    async def invalidate(self, nhs_number: str, context: AuditContext, operator: str) -> None:
        record = await self._operable(nhs_number)
        resource = orjson.loads(record.body)
        version = record.version + 1
        resource["meta"] = {**resource.get("meta", {}), "versionId": str(version)}
        put = patient_put(
            resource,
            expected_version=record.version,
            today=self._today().isoformat(),
            state=ResourceState.INVALIDATED,
        )
        audit = audit_record(
            action=AuditAction.PDS_PATIENT_INVALIDATE,
            outcome=AuditOutcome.SUCCESS,
            principal=None,
            context=context,
            patients=[nhs_number],
            detail=f"invalidated by operator {operator}",
        )
        event = OutboxMessage(
            "pds.patient.invalidated", nhs_number, orjson.dumps({"nhsNumber": nhs_number})
        )
        await self._store.write(WriteSet(puts=[put], audit=[audit], outbox=[event]))

    async def _operable(self, nhs_number: str) -> StoredResource:
        if not is_valid_nhs_number(nhs_number):
            raise InvalidNhsNumber()
        record = await self._store.get(PATIENT, nhs_number)
        if record is None:
            raise PatientNotFound()
        if record.state is not ResourceState.ACTIVE:
            raise InvalidRequest(f"The record is already {record.state.value}")
        return record


def _parse_if_match(value: str | None) -> int:
    if value is None:
        raise PreconditionFailed("Invalid update with error - If-Match header must be supplied")
    if not (value.startswith(_IF_MATCH_PREFIX) and value.endswith('"')):
        raise PreconditionFailed(
            'Invalid update with error - If-Match header must be in the form W/"<version>"'
        )
    digits = value[len(_IF_MATCH_PREFIX) : -1]
    if not (digits.isascii() and digits.isdigit()):
        raise PreconditionFailed(
            'Invalid update with error - If-Match header must be in the form W/"<version>"'
        )
    return int(digits)


def _allocate_nhs_number() -> str:
    """A random valid NHS number in the 9xxxxxxxxx range (the caller checks it is free)."""
    while True:
        stem = "9" + "".join(str(secrets.randbelow(10)) for _ in range(8))
        check = calculate_checksum(stem)
        if check is not None and check != 10:
            return f"{stem}{check}"
