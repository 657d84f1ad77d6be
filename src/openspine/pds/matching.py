"""Scoring a patient against a search: one explainable number between 0 and 1.

Every criterion the caller supplied gets a component score in [0, 1]; the match score is their
mean, rounded to four places. 1.0 means every criterion matched current data exactly. Components:

* names: exact 1.0; wildcard 0.9; a middle name given as the first 0.95; a previous
  (historic) name times 0.95; in a fuzzy search the Jaro-Winkler similarity (rapidfuzz), raised to
  at least 0.85 when the Soundex codes agree, and times 0.9 when family and given names are
  transposed;
* date of birth or death: inside the range 1.0 (a fuzzy search scores a death date but does not
  require it);
* gender, email, phone, GP practice: 1.0 or 0.0; postcode: 1.0, wildcard 0.9, historic times 0.95,
  same outward code (fuzzy) 0.6.

A non-fuzzy search keeps a patient only if every criterion matched; a fuzzy search keeps one
whose name components clear :data:`FUZZY_NAME_THRESHOLD` and whose date of birth is in range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from rapidfuzz.distance import JaroWinkler

from openspine.pds.demographics import Demographics, NameFacts
from openspine.pds.search_query import SearchQuery, Text
from openspine.platform.normalise import phonetic

__all__ = ["FUZZY_NAME_THRESHOLD", "Match", "score"]

FUZZY_NAME_THRESHOLD: Final = 0.8
WILDCARD_SCORE: Final = 0.9
HISTORIC_FACTOR: Final = 0.95
TRANSPOSED_FACTOR: Final = 0.9
PHONETIC_FLOOR: Final = 0.85
OUTWARD_CODE_SCORE: Final = 0.6
MIDDLE_NAME_SCORE: Final = 0.95


@dataclass(frozen=True, slots=True)
class Match:
    nhs_number: str
    score: float
    components: tuple[tuple[str, float], ...]


def _similar(query: str, value: str) -> float:
    if query == value:
        return 1.0
    similarity = JaroWinkler.normalized_similarity(query, value)
    if phonetic(query) and phonetic(query) == phonetic(value):
        similarity = max(similarity, PHONETIC_FLOOR)
    return similarity


def _text_score(query: Text, value: str, fuzzy: bool) -> float:
    if query.wildcard:
        return WILDCARD_SCORE if query.matches(value) else 0.0
    if query.value == value:
        return 1.0
    return _similar(query.value, value) if fuzzy else 0.0


def _given_score(query: tuple[Text, ...], name: NameFacts, fuzzy: bool) -> float:
    """The first given name may be compound (``John Paul``); later ones are middle names."""
    if not name.given:
        return 0.0
    first, rest = query[0], query[1:]
    joined = name.given_joined
    if first.wildcard:
        head = WILDCARD_SCORE if first.matches(joined) or first.matches(name.given[0]) else 0.0
    elif first.value in (name.given[0], joined) or joined.startswith(first.value + " "):
        head = 1.0
    elif first.value in name.given[1:] or first.value in joined.split()[1:]:
        head = MIDDLE_NAME_SCORE  # a middle name searched for as the given name
    else:
        head = _similar(first.value, name.given[0]) if fuzzy else 0.0
    if not rest:
        return head
    tokens = set(joined.split()) | set(name.given)
    found = sum(
        1.0
        if g.value in tokens
        else max((_similar(g.value, t) for t in tokens), default=0.0)
        if fuzzy
        else float(g.value in tokens)
        for g in rest
    )
    return head * (0.5 + 0.5 * found / len(rest)) if found < len(rest) else head


def _name_components(q: SearchQuery, d: Demographics) -> list[tuple[str, float]]:
    """The best-scoring name of the patient (current, or historic when history is searched)."""
    best: list[tuple[str, float]] = []
    best_total = -1.0
    for name in d.names:
        if name.historic and not q.with_history:
            continue
        factor = HISTORIC_FACTOR if name.historic else 1.0
        for transposed in (False, True) if q.fuzzy else (False,):
            parts: list[tuple[str, float]] = []
            if transposed:
                if not (q.family and q.given and name.given):
                    continue
                swapped = NameFacts(name.given[0], (name.family,), name.historic)
                target = swapped
                factor_t = factor * TRANSPOSED_FACTOR
            else:
                target, factor_t = name, factor
            if q.family is not None:
                parts.append(("family", _text_score(q.family, target.family, q.fuzzy) * factor_t))
            if q.given:
                parts.append(("given", _given_score(q.given, target, q.fuzzy) * factor_t))
            total = sum(s for _, s in parts)
            if total > best_total:
                best, best_total = parts, total
    if not best:
        if q.family is not None:
            best.append(("family", 0.0))
        if q.given:
            best.append(("given", 0.0))
    return best


def _postcode_score(q: Text, d: Demographics, with_history: bool, fuzzy: bool) -> float:
    best = 0.0
    for postcode, historic in d.postcodes:
        if historic and not with_history:
            continue
        factor = HISTORIC_FACTOR if historic else 1.0
        if q.wildcard:
            s = WILDCARD_SCORE if q.matches(postcode) else 0.0
        elif postcode == q.value:
            s = 1.0
        elif fuzzy and postcode[:-3] == q.value[:-3]:
            s = OUTWARD_CODE_SCORE
        else:
            s = 0.0
        best = max(best, s * factor)
    return best


def _listed(value: str, items: tuple[tuple[str, bool], ...], with_history: bool) -> float:
    return float(any(v == value and (with_history or not h) for v, h in items))


def score(q: SearchQuery, d: Demographics) -> Match | None:
    """The patient's match for this search, or ``None`` when the search would not return them."""
    if q.birth is None or not q.birth.contains(d.birth_date):
        return None
    components = _name_components(q, d)
    if q.fuzzy:
        if any(s < FUZZY_NAME_THRESHOLD for _, s in components):
            return None
    elif any(s == 0.0 for _, s in components):
        return None
    if q.birth is not None:
        components.append(("birthdate", 1.0))
    required: list[tuple[str, float]] = []
    if q.gender is not None:
        required.append(("gender", float(d.gender == q.gender)))
    if q.postcode is not None:
        required.append(("postcode", _postcode_score(q.postcode, d, q.with_history, q.fuzzy)))
    if q.email is not None:
        required.append(("email", _listed(q.email, d.emails, q.with_history)))
    if q.phone is not None:
        required.append(("phone", _listed(q.phone, d.phones, q.with_history)))
    if any(s == 0.0 for _, s in required):
        return None
    components.extend(required)
    # In a fuzzy search, GP and death date only move the score (PDS FHIR specification).
    if q.gp is not None:
        gp = float(d.gp == q.gp)
        if gp == 0.0 and not q.fuzzy:
            return None
        components.append(("general-practitioner", gp))
    if q.death is not None:
        death = float(q.death.contains(d.death_date))
        if death == 0.0 and not q.fuzzy:
            return None
        components.append(("death-date", death))
    total = round(sum(s for _, s in components) / len(components), 4)
    return Match(d.nhs_number, total, tuple((k, round(s, 4)) for k, s in components))
