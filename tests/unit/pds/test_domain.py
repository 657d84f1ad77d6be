from __future__ import annotations

import pytest

from openspine.pds.domain import is_valid_nhs_number
from openspine.pds.fhir import is_restricted, restricted_view
from openspine.synth.patients import patient_resource
from openspine.synth.sandbox import SANDBOX_PATIENTS
from tests.conftest import pds_stub


@pytest.mark.parametrize("number", ["9000000009", "9000000017", "9000000025", "9111231130"])
def test_valid(number: str) -> None:
    assert is_valid_nhs_number(number)


@pytest.mark.parametrize(
    "number",
    [
        "9000000000",
        "900000000",
        "90000000090",
        "abcdefghij",
        "9000000008",
        " 900000000",
        "\uff19\uff10\uff10\uff10\uff10\uff10\uff10\uff1009",
    ],
)
def test_invalid(number: str) -> None:
    assert not is_valid_nhs_number(number)


def test_restricted_view_matches_the_nhs_sandbox() -> None:
    stub = pds_stub("patientResponses/patient_9000000025.json")
    facts = next(p for p in SANDBOX_PATIENTS if p.nhs_number == "9000000025")
    full = patient_resource(facts)
    assert is_restricted(full)
    assert "address" in full
    assert "telecom" in full
    view = restricted_view(full)
    assert set(view) == set(stub)
    assert view["extension"] == stub["extension"]


def test_nhs_number_check_agrees_with_the_nhs_number_package() -> None:
    """The hot-path modulus 11 check gives the package's answer, valid or not."""
    import random

    from nhs_number.validate import is_valid

    from openspine.pds.domain import is_valid_nhs_number

    rng = random.Random(11)  # noqa: S311 - test data
    samples = [f"{rng.randrange(10**10):010d}" for _ in range(20_000)]
    samples += ["9000000009", "9000000017", "9000000025", "0000000000", "9999999999"]
    for value in samples:
        assert is_valid_nhs_number(value) == bool(is_valid(value)), value
    assert not is_valid_nhs_number("900000000")
    assert not is_valid_nhs_number("90000000\u00b29")
