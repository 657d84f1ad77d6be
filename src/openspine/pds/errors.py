"""PDS errors: the Spine codes the PDS FHIR API answers with."""

from __future__ import annotations

from openspine.platform.errors import (
    Forbidden,
    InvalidatedResource,
    InvalidResourceId,
    ResourceNotFound,
)

__all__ = ["InvalidNhsNumber", "PatientInvalidated", "PatientNotFound", "SingleResultOnly"]


class InvalidNhsNumber(InvalidResourceId):
    """400 INVALID_RESOURCE_ID: the id is not a valid NHS number."""


class PatientNotFound(ResourceNotFound):
    """404 RESOURCE_NOT_FOUND: no patient has this NHS number."""


class PatientInvalidated(InvalidatedResource):
    """404 INVALIDATED_RESOURCE: the record was invalidated and not superseded."""


class SingleResultOnly(Forbidden):
    """403 INVALID_VALUE: application-restricted callers may only ask for one result."""

    code = "INVALID_VALUE"
    display = "Provided value is invalid"
    issue_type = "value"
