"""Semantic search with the reference package's rules (its fuzzy semantic searcher).

- Class keys (Data, Task, Library, License): the learnware's value is among the user's values.
- Tag keys (Scenario): the value sets intersect.
- A user key with no values matches everything; a key the learnware lacks matches
  only when the user accepts "Others".
- Name: case-insensitive substring of the learnware's name or description; only when
  no learnware matches that way, fuzzy matching (rapidfuzz partial_ratio >= min score).
"""

from __future__ import annotations

from typing import Any, Sequence, TypeVar

from rapidfuzz import fuzz

FUZZY_MIN_SCORE = 75.0
TEXT_KEYS = ("Name", "Description")
T = TypeVar("T")


def tags_match(user: dict[str, Any], learnware: dict[str, Any]) -> bool:
    for key, entry in user.items():
        if key in TEXT_KEYS or not isinstance(entry, dict):
            continue
        wanted = entry.get("Values") or []
        if len(wanted) == 0:
            continue
        if key not in learnware:
            if "Others" in wanted:
                continue
            return False
        have = learnware[key].get("Values") or []
        if len(have) == 0:
            return False
        if entry.get("Type") == "Tag":
            if not set(wanted) & set(have):
                return False
        elif (have[0] if isinstance(have, list) else have) not in wanted:
            return False
    return True


def _text_query(user: dict[str, Any]) -> str:
    for key in TEXT_KEYS:
        value = (user.get(key) or {}).get("Values") or ""
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return ""


def semantic_search(user: dict[str, Any], candidates: Sequence[tuple[T, dict[str, Any]]], min_fuzzy_score: float = FUZZY_MIN_SCORE) -> list[tuple[T, float]]:
    """Learnwares matching the user's semantic spec, best first, with a score in [0, 1].

    `candidates` pairs any handle with the learnware's semantic dictionary. Exact matches
    score 1; fuzzy matches score their partial ratio / 100.
    """
    tagged = [(handle, spec) for handle, spec in candidates if tags_match(user, spec)]
    query = _text_query(user)
    if not query:
        return [(handle, 1.0) for handle, _ in tagged]
    texts = [(handle, _text(spec, "Name"), _text(spec, "Description")) for handle, spec in tagged]
    exact = [(handle, 1.0) for handle, name, description in texts if query in name or query in description]
    if exact:
        return exact
    fuzzy = []
    for handle, name, description in texts:
        score = max(fuzz.partial_ratio(query, name), fuzz.partial_ratio(query, description))
        if score >= min_fuzzy_score:
            fuzzy.append((handle, score / 100.0))
    fuzzy.sort(key=lambda item: item[1], reverse=True)
    return fuzzy


def _text(spec: dict[str, Any], key: str) -> str:
    value = (spec.get(key) or {}).get("Values") or ""
    return value.lower() if isinstance(value, str) else ""
