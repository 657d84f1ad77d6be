"""Deterministic synthetic patients and organisations for a given seed and size.

Names come from Faker's en_GB word lists (real UK first names and surnames) and are drawn
with our own seeded ``random.Random``, which is much faster than Faker's per-call machinery
and stable for a seed. NHS numbers are valid, in the 9xxxxxxxxx test range, unique (an affine
permutation of 910000000-999999999, check digit 10 skipped) and never clash with the sandbox's
90000000xx numbers.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate, islice
from typing import TypeVar

from faker.providers.address.en_GB import Provider as AddressWords
from faker.providers.person.en_GB import Provider as PersonWords
from nhs_number.validate import calculate_checksum

from openspine.directory.domain import Organisation, OrganisationRole
from openspine.synth.patients import PatientFacts

__all__ = [
    "BLOCK",
    "MAX_SIZE",
    "PatientMaker",
    "Population",
    "nhs_numbers",
    "organisations",
    "patients",
]

T = TypeVar("T")

_SPAN = 90_000_000
_BASE = 910_000_000
#: Patients are made in blocks. Each block has its own random stream and its own range of NHS
#: number stems, so blocks can be made in any order or in parallel and come out the same.
BLOCK = 5000
#: About one stem in eleven has no valid check digit; a quarter more stems than patients leaves
#: a wide margin (a shortfall is checked, not assumed).
_STEMS_PER_BLOCK = BLOCK * 5 // 4
MAX_SIZE = _SPAN // _STEMS_PER_BLOCK * BLOCK
_TOWNS = (
    ("Leeds", "LS"),
    ("Manchester", "M"),
    ("Birmingham", "B"),
    ("Bristol", "BS"),
    ("Newcastle upon Tyne", "NE"),
    ("Sheffield", "S"),
    ("Nottingham", "NG"),
    ("Leicester", "LE"),
    ("Norwich", "NR"),
    ("Exeter", "EX"),
    ("York", "YO"),
    ("Liverpool", "L"),
    ("Southampton", "SO"),
    ("Plymouth", "PL"),
    ("Cambridge", "CB"),
    ("Oxford", "OX"),
    ("Brighton", "BN"),
    ("Hull", "HU"),
    ("Derby", "DE"),
    ("Bath", "BA"),
)
_STREET_TYPES = (
    "Road",
    "Street",
    "Lane",
    "Avenue",
    "Close",
    "Drive",
    "Way",
    "Crescent",
    "Grove",
    "Place",
    "Gardens",
    "Terrace",
)
_AREAS = dict(_TOWNS)
_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_SURNAMES = tuple(PersonWords.last_names)
_SURNAME_WEIGHTS = tuple(accumulate(PersonWords.last_names.values()))
_MALE = tuple(PersonWords.first_names_male)
_FEMALE = tuple(PersonWords.first_names_female)
_STREET_SUFFIXES = tuple(AddressWords.street_suffixes)
_EPOCH = date(1920, 1, 1)


def _surname(rng: random.Random) -> str:
    return rng.choices(_SURNAMES, cum_weights=_SURNAME_WEIGHTS)[0]


@dataclass(frozen=True, slots=True)
class Population:
    seed: int
    size: int

    @property
    def practice_count(self) -> int:
        return max(5, self.size // 2000)

    @property
    def pharmacy_count(self) -> int:
        return max(3, self.size // 4000)


def nhs_numbers(seed: int, first: int = 0, stop: int = _SPAN) -> Iterator[str]:
    """Distinct valid test-range NHS numbers from stems ``first`` to ``stop`` of the seed's
    permutation: the same numbers for the same seed, and none shared by disjoint stem ranges."""
    rng = random.Random(seed)
    step = rng.randrange(1_000_003, 9_999_991)
    while step % 2 == 0 or step % 3 == 0 or step % 5 == 0:  # coprime with 90,000,000
        step += 1
    offset = rng.randrange(_SPAN)
    for i in range(first, min(stop, _SPAN)):
        stem = str(_BASE + (offset + i * step) % _SPAN)
        check = calculate_checksum(stem)
        if check is not None and check != 10:
            yield f"{stem}{check}"


def _postcode(rng: random.Random, area: str) -> str:
    return (
        f"{area}{rng.randint(1, 28)} {rng.randint(1, 9)}"
        f"{rng.choice(_LETTERS)}{rng.choice(_LETTERS)}"
    )


def _commissioner(town_index: int) -> str:
    """The integrated care board (commissioner) of a town: practices belong to it."""
    return f"Q{_LETTERS[town_index]}X"


def organisations(population: Population) -> list[Organisation]:
    rng = random.Random(population.seed * 7 + 1)
    orgs: list[Organisation] = []
    for i in range(3):
        town, area = _TOWNS[i]
        orgs.append(
            Organisation(
                ods_code=f"R{_LETTERS[i]}{i + 1}",
                name=f"{town} Teaching Hospitals NHS Trust",
                roles=(OrganisationRole.NHS_TRUST,),
                postcode=_postcode(rng, area),
                address_line="Hospital Road",
                town=town,
            )
        )
    commissioners_rng = random.Random(population.seed * 11 + 5)  # leaves the others as they were
    for i, (town, area) in enumerate(_TOWNS):
        orgs.append(
            Organisation(
                ods_code=_commissioner(i),
                name=f"NHS {town} Integrated Care Board",
                roles=(OrganisationRole.COMMISSIONER,),
                postcode=_postcode(commissioners_rng, area),
                address_line="Civic Centre",
                town=town,
            )
        )
    for i in range(population.practice_count):
        town, area = _TOWNS[i % len(_TOWNS)]
        surname = _surname(rng)
        orgs.append(
            Organisation(
                ods_code=f"{_LETTERS[i % len(_LETTERS)]}{81001 + i}",
                name=f"The {surname} Medical Practice",
                roles=(OrganisationRole.GP_PRACTICE, OrganisationRole.PRESCRIBING_COST_CENTRE),
                postcode=_postcode(rng, area),
                address_line=f"{rng.randint(1, 200)} High Street",
                town=town,
                parent_ods_code=_commissioner(i % len(_TOWNS)),
            )
        )
    for i in range(population.pharmacy_count):
        town, area = _TOWNS[i % len(_TOWNS)]
        orgs.append(
            Organisation(
                ods_code=f"F{_LETTERS[i % len(_LETTERS)]}{100 + i}",
                name=f"{_surname(rng)} Pharmacy",
                roles=(OrganisationRole.PHARMACY,),
                postcode=_postcode(rng, area),
                address_line=f"{rng.randint(1, 200)} Market Street",
                town=town,
            )
        )
    return orgs


class _Draw:
    """Draws from one seeded stream, built on ``random()`` alone: ``randrange``, ``choice`` and
    ``choices`` are pure Python and took most of a patient's making time."""

    __slots__ = ("random",)

    def __init__(self, seed: str) -> None:
        self.random = random.Random(seed).random

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def between(self, low: int, high: int) -> int:
        return low + int(self.random() * (high - low + 1))

    def pick(self, items: Sequence[T]) -> T:
        return items[int(self.random() * len(items))]

    def surname(self) -> str:
        return _SURNAMES[bisect(_SURNAME_WEIGHTS, self.random() * _SURNAME_WEIGHTS[-1])]

    def postcode(self, area: str) -> str:
        return (
            f"{area}{self.between(1, 28)} {self.between(1, 9)}"
            f"{self.pick(_LETTERS)}{self.pick(_LETTERS)}"
        )


class PatientMaker:
    """Makes a population's patients block by block (``BLOCK`` patients each, the last fewer)."""

    def __init__(self, population: Population) -> None:
        if not 0 <= population.size <= MAX_SIZE:
            raise ValueError(f"a population has 0 to {MAX_SIZE:,} patients")
        self.population = population
        orgs = organisations(population)
        self._practices = [o for o in orgs if OrganisationRole.GP_PRACTICE in o.roles]
        self._pharmacies = [o for o in orgs if OrganisationRole.PHARMACY in o.roles]

    @property
    def blocks(self) -> int:
        return -(-self.population.size // BLOCK)

    def block(self, index: int) -> list[PatientFacts]:
        if not 0 <= index < self.blocks:
            raise IndexError(f"block {index} of a population of {self.blocks} blocks")
        seed = self.population.seed
        size = min(BLOCK, self.population.size - index * BLOCK)
        first = index * _STEMS_PER_BLOCK
        numbers = list(islice(nhs_numbers(seed, first, first + _STEMS_PER_BLOCK), size))
        if len(numbers) < size:
            raise RuntimeError(f"NHS number stems ran short in block {index}")
        draw = _Draw(f"{seed}/{index}")
        return [self._patient(draw, number) for number in numbers]

    def _patient(self, d: _Draw, nhs_number: str) -> PatientFacts:
        gender = "female" if d.random() < 0.51 else "male"
        if d.random() < 0.004:
            gender = "unknown" if d.random() < 0.5 else "other"
        firsts = _FEMALE if gender == "female" else _MALE
        given = [d.pick(firsts)]
        if d.random() < 0.35:
            given.append(d.pick(firsts))
        practice = d.pick(self._practices)
        town, area = practice.town, _AREAS[practice.town]
        born = _EPOCH + timedelta(days=d.below(37_000))
        family = d.surname()
        street = f"{d.surname()} {d.pick(_STREET_TYPES)}"
        if d.random() < 0.1:
            street = f"{d.surname()} {d.pick(_STREET_SUFFIXES)}"
        moved = born + timedelta(days=d.below(6000))
        previous_family = d.surname() if gender == "female" and d.random() < 0.25 else None
        previous_postcode = d.postcode(area) if d.random() < 0.2 else None
        return PatientFacts(
            nhs_number=nhs_number,
            restricted=d.random() < 0.002,
            family=family,
            given=given,
            prefix=[("Mrs" if d.random() < 0.5 else "Ms") if gender == "female" else "Mr"],
            gender=gender,
            birth_date=born.isoformat(),
            address_lines=[f"{d.between(1, 250)} {street}", town],
            postcode=d.postcode(area),
            address_since=moved.isoformat(),
            phone=f"0{d.between(1000, 7999)}{d.between(100000, 999999)}",
            email=(
                f"{given[0].lower()}.{family.lower()}{d.between(1, 99)}@example.com"
                if d.random() < 0.6
                else None
            ),
            gp_ods=practice.ods_code,
            gp_since=(born + timedelta(days=d.below(9000))).isoformat(),
            pharmacy_ods=d.pick(self._pharmacies).ods_code if d.random() < 0.7 else None,
            previous_family=previous_family,
            previous_address_lines=(
                [f"{d.between(1, 250)} {d.surname()} {d.pick(_STREET_TYPES)}", town]
                if previous_postcode
                else []
            ),
            previous_postcode=previous_postcode,
            previous_until=(moved - timedelta(days=1)).isoformat()
            if previous_family or previous_postcode
            else None,
        )


def patients(population: Population) -> Iterator[PatientFacts]:
    """``population.size`` patients, the same ones for the same seed and size."""
    maker = PatientMaker(population)
    for index in range(maker.blocks):
        yield from maker.block(index)
