from __future__ import annotations

from itertools import islice

import pytest

from openspine.pds.domain import is_valid_nhs_number
from openspine.synth.population import (
    BLOCK,
    MAX_SIZE,
    PatientMaker,
    Population,
    nhs_numbers,
    patients,
)


def test_deterministic_for_a_seed() -> None:
    a = [p.nhs_number + (p.family or "") for p in patients(Population(1, 200))]
    b = [p.nhs_number + (p.family or "") for p in patients(Population(1, 200))]
    c = [p.nhs_number for p in patients(Population(2, 200))]
    assert a == b
    assert a != c


def test_numbers_valid_unique_in_test_range_and_clear_of_sandbox() -> None:
    numbers = list(islice(nhs_numbers(5), 20_000))
    assert len(set(numbers)) == len(numbers)
    assert all(is_valid_nhs_number(n) and n.startswith("9") for n in numbers)
    assert not any(n.startswith("90000000") for n in numbers)


def test_patients_are_realistic() -> None:
    people = list(patients(Population(3, 500)))
    assert all(p.family and p.given and p.birth_date and p.postcode and p.gp_ods for p in people)
    assert {p.gender for p in people} >= {"male", "female"}
    assert any(p.restricted for p in patients(Population(3, 5000)))


def test_blocks_are_the_same_made_alone_or_in_sequence() -> None:
    population = Population(4, 2 * BLOCK + 7)
    maker = PatientMaker(population)
    in_sequence = list(patients(population))
    assert maker.blocks == 3
    assert len(in_sequence) == 2 * BLOCK + 7
    assert maker.block(2) == in_sequence[2 * BLOCK :]
    assert maker.block(1) == in_sequence[BLOCK : 2 * BLOCK]
    with pytest.raises(IndexError):
        maker.block(3)
    numbers = [p.nhs_number for p in in_sequence]
    assert len(set(numbers)) == len(numbers)  # disjoint stem ranges: no number twice


def test_a_population_larger_than_the_number_range_is_refused() -> None:
    with pytest.raises(ValueError, match="a population has"):
        PatientMaker(Population(1, MAX_SIZE + 1))
