"""Deterministic synthetic patients and organisations for a given seed and size.

Names come from Faker's en_GB word lists (real UK first names and surnames) and are drawn
with our own seeded ``random.Random``, which is much faster than Faker's per-call machinery
and stable for a seed. NHS numbers are valid, in the 9xxxxxxxxx test range, unique (an affine
permutation of 910000000-999999999, check digit 10 skipped) and never clash with the sandbox's
90000000xx numbers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate

from faker.providers.address.en_GB import Provider as AddressWords
from faker.providers.person.en_GB import Provider as PersonWords
from nhs_number.validate import calculate_checksum

from openspine.directory.domain import Organisation, OrganisationRole
from openspine.synth.patients import PatientFacts

__all__ = ["Population", "nhs_numbers", "organisations", "patients"]

_SPAN = 90_000_000
_BASE = 910_000_000
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
_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_SURNAMES = tuple(PersonWords.last_names)
_SURNAME_WEIGHTS = tuple(accumulate(PersonWords.last_names.values()))


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


def nhs_numbers(seed: int) -> Iterator[str]:
    """An endless, deterministic sequence of distinct valid test-range NHS numbers."""
    rng = random.Random(seed)
    step = rng.randrange(1_000_003, 9_999_991)
    while step % 2 == 0 or step % 3 == 0 or step % 5 == 0:  # coprime with 90,000,000
        step += 1
    offset = rng.randrange(_SPAN)
    for i in range(_SPAN):
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


def patients(population: Population) -> Iterator[PatientFacts]:
    """``population.size`` patients, the same ones for the same seed and size."""
    rng = random.Random(population.seed)
    practices = [o for o in organisations(population) if OrganisationRole.GP_PRACTICE in o.roles]
    pharmacies = [o for o in organisations(population) if OrganisationRole.PHARMACY in o.roles]
    male, female = PersonWords.first_names_male, PersonWords.first_names_female
    streets = AddressWords.street_suffixes
    epoch = date(1920, 1, 1)
    numbers = nhs_numbers(population.seed)
    for _ in range(population.size):
        gender = "female" if rng.random() < 0.51 else "male"
        if rng.random() < 0.004:
            gender = "unknown" if rng.random() < 0.5 else "other"
        firsts = female if gender == "female" else male
        given = [rng.choice(firsts)]
        if rng.random() < 0.35:
            given.append(rng.choice(firsts))
        practice = rng.choice(practices)
        town, area = next(t for t in _TOWNS if t[0] == practice.town)
        born = epoch + timedelta(days=rng.randrange(37_000))
        family = _surname(rng)
        street = f"{_surname(rng)} {rng.choice(_STREET_TYPES)}"
        if rng.random() < 0.1:
            street = f"{_surname(rng)} {rng.choice(streets)}"
        moved = born + timedelta(days=rng.randrange(6000))
        previous_family = _surname(rng) if gender == "female" and rng.random() < 0.25 else None
        previous_postcode = _postcode(rng, area) if rng.random() < 0.2 else None
        yield PatientFacts(
            nhs_number=next(numbers),
            restricted=rng.random() < 0.002,
            family=family,
            given=given,
            prefix=[("Mrs" if rng.random() < 0.5 else "Ms") if gender == "female" else "Mr"],
            gender=gender,
            birth_date=born.isoformat(),
            address_lines=[f"{rng.randint(1, 250)} {street}", town],
            postcode=_postcode(rng, area),
            address_since=moved.isoformat(),
            phone=f"0{rng.randint(1000, 7999)}{rng.randint(100000, 999999)}",
            email=(
                f"{given[0].lower()}.{family.lower()}{rng.randint(1, 99)}@example.com"
                if rng.random() < 0.6
                else None
            ),
            gp_ods=practice.ods_code,
            gp_since=(born + timedelta(days=rng.randrange(9000))).isoformat(),
            pharmacy_ods=rng.choice(pharmacies).ods_code if rng.random() < 0.7 else None,
            previous_family=previous_family,
            previous_address_lines=(
                [f"{rng.randint(1, 250)} {_surname(rng)} {rng.choice(_STREET_TYPES)}", town]
                if previous_postcode
                else []
            ),
            previous_postcode=previous_postcode,
            previous_until=(moved - timedelta(days=1)).isoformat()
            if previous_family or previous_postcode
            else None,
        )
