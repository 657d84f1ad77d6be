"""The NHS PDS sandbox's well-known test patients, so sandbox users find what they expect.

Same NHS numbers and characteristics as the NHS sandbox: 9000000009 an ordinary patient (Mrs
Jane Smith, registered at Y12345), 9000000017 Mrs Jayne Smyth, 9000000025 a restricted
patient (Mrs Janet Smythe), 9000000033 a record with minimal data. OpenSpine adds 9000000041, a
record superseded by 9000000009, and 9000000068, an invalidated record.
"""

from __future__ import annotations

from openspine.synth.patients import PatientFacts

__all__ = ["INVALIDATED", "SANDBOX_ODS", "SANDBOX_PATIENTS", "SUPERSEDED"]

SANDBOX_ODS = "Y12345"
LEEDS = ["1 Trevelyan Square", "Boar Lane", "City Centre", "Leeds", "West Yorkshire"]

SANDBOX_PATIENTS: tuple[PatientFacts, ...] = (
    PatientFacts(
        nhs_number="9000000009",
        version=2,
        family="Smith",
        given=["Jane"],
        prefix=["Mrs"],
        gender="female",
        birth_date="2010-10-22",
        deceased="2010-10-22T00:00:00+00:00",
        multiple_birth=1,
        address_lines=LEEDS,
        postcode="LS1 6AE",
        address_since="2020-01-01",
        phone="01632960587",
        email="jane.smith@example.com",
        gp_ods=SANDBOX_ODS,
        gp_since="2020-01-01",
        pharmacy_ods=SANDBOX_ODS,
    ),
    PatientFacts(
        nhs_number="9000000017",
        version=2,
        family="Smyth",
        given=["Jayne"],
        prefix=["Mrs"],
        suffix=["MBE"],
        gender="female",
        birth_date="2010-10-22",
        multiple_birth=1,
        address_lines=LEEDS,
        postcode="LS1 6AE",
        address_since="2020-01-01",
        phone="01632960587",
        email="jayne.smyth@example.com",
        gp_ods=SANDBOX_ODS,
        gp_since="2020-01-01",
    ),
    PatientFacts(
        nhs_number="9000000025",
        version=2,
        restricted=True,
        family="Smythe",
        given=["Janet"],
        prefix=["Mrs"],
        suffix=["MBE"],
        gender="female",
        birth_date="2010-10-22",
        deceased="2010-10-22T00:00:00+00:00",
        multiple_birth=1,
        address_lines=LEEDS,
        postcode="LS1 6AE",
        phone="01632960587",
        gp_ods=SANDBOX_ODS,
        pharmacy_ods=SANDBOX_ODS,
    ),
    PatientFacts(nhs_number="9000000033", version=2),
)

#: Superseded NHS number → the NHS number of the record that survives it.
SUPERSEDED: dict[str, PatientFacts] = {
    "9000000009": PatientFacts(
        nhs_number="9000000041",
        version=3,
        family="Smith",
        given=["Jane"],
        gender="female",
        birth_date="2010-10-22",
    ),
}

INVALIDATED: tuple[PatientFacts, ...] = (
    PatientFacts(
        nhs_number="9000000068",
        version=2,
        family="Invalid",
        given=["Record"],
        gender="unknown",
        birth_date="1990-01-01",
    ),
)
