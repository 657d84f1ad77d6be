"""The SpineError tree: every error a client can see, mapped once to an OperationOutcome.

Each class knows its HTTP status, FHIR issue type and severity, and its code and display in
the Spine error code system (https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode), taken
exactly from the NHS specifications' error payloads. Raise an instance with optional
``diagnostics`` (never patient data); the one handler in :mod:`openspine.platform.http` renders it.

    SpineError
    ├── BadRequest (400): InvalidResourceId, MissingValue, InvalidValue, UnsupportedService,
    │                     InvalidSearchData, AdditionalProperties, InvalidRequest,
    │                     InvalidUpdate, InvalidCreate, UnsupportedValue, TooFewValuesSubmitted,
    │                     TooManyValuesSubmitted, UnsupportedCharacters, ValidationError
    ├── Unauthorized (401): AccessDenied
    ├── Forbidden (403): Forbidden, ForbiddenUpdate
    ├── NotFound (404): ResourceNotFound, InvalidatedResource
    ├── MethodNotAllowed (405): InvalidMethod
    ├── PreconditionFailed (412): PreconditionFailed
    ├── Conflict (409): ResourceVersionMismatch, RequestIdReused
    ├── PayloadTooLarge (413)
    ├── TooManyRequests (429)
    ├── ServiceUnavailable (503)
    └── InternalServerError (500): never carries details
"""

from __future__ import annotations

from typing import ClassVar

import orjson

__all__ = [
    "ERROR_SYSTEM",
    "AccessDenied",
    "AdditionalProperties",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "ForbiddenUpdate",
    "InternalServerError",
    "InvalidCreate",
    "InvalidMethod",
    "InvalidRequest",
    "InvalidResourceId",
    "InvalidSearchData",
    "InvalidUpdate",
    "InvalidValue",
    "InvalidatedResource",
    "MissingValue",
    "PayloadTooLarge",
    "PreconditionFailed",
    "RequestIdReused",
    "ResourceNotFound",
    "ResourceVersionMismatch",
    "ServiceUnavailable",
    "SpineError",
    "TooFewValuesSubmitted",
    "TooManyRequests",
    "TooManyValuesSubmitted",
    "UnsupportedCharacters",
    "UnsupportedService",
    "UnsupportedValue",
    "ValidationError",
    "operation_outcome",
]

ERROR_SYSTEM = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"


class SpineError(Exception):
    """Base of every error that becomes an OperationOutcome."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "INVALID_REQUEST"
    display: ClassVar[str] = "Invalid request"
    issue_type: ClassVar[str] = "invalid"
    severity: ClassVar[str] = "error"

    def __init__(
        self,
        diagnostics: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        expression: list[str] | None = None,
    ):
        super().__init__(diagnostics or self.display)
        self.diagnostics = diagnostics
        self.headers = headers or {}
        self.expression = expression

    def outcome(self) -> bytes:
        return operation_outcome(
            code=self.code,
            display=self.display,
            issue_type=self.issue_type,
            severity=self.severity,
            diagnostics=self.diagnostics,
            expression=self.expression,
        )


def operation_outcome(
    *,
    code: str,
    display: str,
    issue_type: str,
    severity: str,
    diagnostics: str | None,
    expression: list[str] | None = None,
) -> bytes:
    issue: dict[str, object] = {
        "severity": severity,
        "code": issue_type,
        "details": {
            "coding": [{"system": ERROR_SYSTEM, "version": "1", "code": code, "display": display}]
        },
    }
    if diagnostics:
        issue["diagnostics"] = diagnostics
    if expression:
        issue["expression"] = expression
    return orjson.dumps({"resourceType": "OperationOutcome", "issue": [issue]})


class BadRequest(SpineError):
    status = 400


class InvalidRequest(BadRequest):
    code = "INVALID_REQUEST"
    display = "Invalid request"
    issue_type = "invalid"


class InvalidResourceId(BadRequest):
    code = "INVALID_RESOURCE_ID"
    display = "Resource Id is invalid"
    issue_type = "value"


class MissingValue(BadRequest):
    code = "MISSING_VALUE"
    display = "Required value is missing"
    issue_type = "required"


class InvalidValue(BadRequest):
    code = "INVALID_VALUE"
    display = "Provided value is invalid"
    issue_type = "value"


class UnsupportedService(BadRequest):
    code = "UNSUPPORTED_SERVICE"
    display = "Unsupported Service"
    issue_type = "processing"


class InvalidSearchData(BadRequest):
    code = "INVALID_SEARCH_DATA"
    display = "Search data is invalid"
    issue_type = "value"


class AdditionalProperties(BadRequest):
    code = "ADDITIONAL_PROPERTIES"
    display = "Additional properties should not be included"
    issue_type = "invariant"


class InvalidUpdate(BadRequest):
    code = "INVALID_UPDATE"
    display = "Update is invalid"
    issue_type = "structure"


class InvalidCreate(BadRequest):
    code = "INVALID_CREATE"
    display = "Patient create data is invalid"
    issue_type = "value"


class UnsupportedValue(BadRequest):
    code = "UNSUPPORTED_VALUE"
    display = "Unsupported value"
    issue_type = "value"


class TooFewValuesSubmitted(BadRequest):
    code = "TOO_FEW_VALUES_SUBMITTED"
    display = "Too few values submitted"
    issue_type = "value"


class TooManyValuesSubmitted(BadRequest):
    code = "TOO_MANY_VALUES_SUBMITTED"
    display = "Too many values submitted"
    issue_type = "value"


class UnsupportedCharacters(BadRequest):
    code = "UNSUPPORTED_CHARACTERS_IN_FIELD"
    display = "Unsupported characters in field"
    issue_type = "value"


class ValidationError(BadRequest):
    code = "VALIDATION_ERROR"
    display = "Validation error"
    issue_type = "invalid"


class AccessDenied(SpineError):
    """401: no usable credentials (missing, malformed, expired, replayed or wrongly signed)."""

    status = 401
    code = "ACCESS_DENIED"
    display = "Access Denied - Unauthorised"
    issue_type = "forbidden"


class Forbidden(SpineError):
    """403: authenticated, but not allowed to do this (RBAC, relationship, access mode)."""

    status = 403
    code = "ACCESS_DENIED"
    display = "Access denied"
    issue_type = "forbidden"


class ForbiddenUpdate(SpineError):
    """403: this caller may not make this change (formal death, GP removal, patient fields)."""

    status = 403
    code = "FORBIDDEN_UPDATE"
    display = "Update is forbidden"
    issue_type = "forbidden"
    severity = "information"


class NotFound(SpineError):
    status = 404
    issue_type = "not-found"


class ResourceNotFound(NotFound):
    code = "RESOURCE_NOT_FOUND"
    display = "Resource not found"
    severity = "information"


class InvalidatedResource(NotFound):
    code = "INVALIDATED_RESOURCE"
    display = (
        "Resource that has been marked as invalid was requested - "
        "invalid resources cannot be retrieved"
    )
    issue_type = "processing"


class InvalidMethod(SpineError):
    status = 405
    code = "INVALID_METHOD"
    display = "Method not allowed"
    issue_type = "not-supported"


class PreconditionFailed(SpineError):
    status = 412
    code = "PRECONDITION_FAILED"
    display = "Required condition was not fulfilled"
    issue_type = "structure"


class Conflict(SpineError):
    status = 409
    issue_type = "conflict"


class ResourceVersionMismatch(Conflict):
    code = "RESOURCE_VERSION_MISMATCH"
    display = "Resource version supplied does not match actual version"


class RequestIdReused(Conflict):
    """409: an X-Request-ID already used by this caller for a different request."""

    code = "DUPLICATE_REQUEST_ID"
    display = "X-Request-ID has already been used for a different request"
    issue_type = "duplicate"


class PayloadTooLarge(SpineError):
    status = 413
    code = "INVALID_REQUEST"
    display = "Request body is too large"
    issue_type = "too-costly"


class TooManyRequests(SpineError):
    status = 429
    code = "TOO_MANY_REQUESTS"
    display = "You have exceeded your application's rate limit"
    issue_type = "throttled"


class ServiceUnavailable(SpineError):
    status = 503
    code = "SERVICE_UNAVAILABLE"
    display = "Service unavailable"
    issue_type = "transient"


class InternalServerError(SpineError):
    status = 500
    code = "SERVER_ERROR"
    display = "Internal server error"
    issue_type = "exception"
