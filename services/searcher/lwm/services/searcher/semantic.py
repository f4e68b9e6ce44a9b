"""Semantic search with the reference package's rules (its fuzzy semantic searcher), over an inverted index.

- Class keys (Data, Task, Library, License, Model): the learnware's value is among the user's values.
- Tag keys (Scenario): the value sets intersect.
- A user key with no values matches everything; a key the learnware lacks matches
  only when the user accepts "Others"; a key it has with no values matches nothing.
- Name: case-insensitive substring of the learnware's name or description; only when
  no learnware matches that way, fuzzy matching (rapidfuzz partial_ratio >= min score).

The index keeps, per (key, value), the ids whose value it is, so a query costs set
operations on the matching ids rather than a pass over every learnware.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

FUZZY_MIN_SCORE = 75.0
TEXT_KEYS = ("Name", "Description")


@dataclass
class SemanticMatches:
    """ids -> score in [0, 1] (exact matches 1, fuzzy ones partial ratio / 100).

    `scores` is None when every indexed learnware matches with score 1 (no constraint at all).
    """

    scores: dict[str, float] | None
    fuzzy: bool


def _text(spec: dict[str, Any], key: str) -> str:
    value = (spec.get(key) or {}).get("Values") or ""
    return value.lower() if isinstance(value, str) else ""


def text_query(user: dict[str, Any]) -> str:
    for key in TEXT_KEYS:
        value = (user.get(key) or {}).get("Values") or ""
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return ""


def _constraints(user: dict[str, Any]) -> list[tuple[str, str, list[Any]]]:
    """(key, type, wanted values) of every user key that restricts the match."""
    out = []
    for key, entry in user.items():
        if key in TEXT_KEYS or not isinstance(entry, dict):
            continue
        wanted = entry.get("Values") or []
        if len(wanted) > 0:
            out.append((key, entry.get("Type", "Class"), wanted))
    return out


class SemanticIndex:
    """Inverted index of learnware semantic specs; not thread-safe (LearnwareIndex locks it)."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._has_key: dict[str, set[str]] = defaultdict(set)
        # (key, value) -> ids: Class keys by their (first) value, Tag keys by every value.
        self._by_class: dict[tuple[str, Any], set[str]] = defaultdict(set)
        self._by_tag: dict[tuple[str, Any], set[str]] = defaultdict(set)
        self._texts: dict[str, tuple[str, str]] = {}
        self._postings: dict[str, list[tuple[dict[tuple[str, Any], set[str]], tuple[str, Any]]]] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, learnware_id: str, spec: dict[str, Any]) -> None:
        self.remove(learnware_id)
        postings = []
        for key, entry in spec.items():
            if key in TEXT_KEYS or not isinstance(entry, dict):
                continue
            self._has_key[key].add(learnware_id)
            have = entry.get("Values") or []
            if len(have) == 0:
                continue
            postings.append((self._by_class, (key, have[0] if isinstance(have, list) else have)))
            postings.extend((self._by_tag, (key, value)) for value in set(have))
        for table, posting in postings:
            table[posting].add(learnware_id)
        self._postings[learnware_id] = postings
        self._texts[learnware_id] = (_text(spec, "Name"), _text(spec, "Description"))
        self._ids.add(learnware_id)

    def remove(self, learnware_id: str) -> None:
        if learnware_id not in self._ids:
            return
        self._ids.discard(learnware_id)
        for ids in self._has_key.values():
            ids.discard(learnware_id)
        for table, posting in self._postings.pop(learnware_id):
            table[posting].discard(learnware_id)
            if not table[posting]:
                del table[posting]
        del self._texts[learnware_id]

    def _tag_matches(self, user: dict[str, Any], within: set[str] | None) -> set[str] | None:
        """ids satisfying every Class/Tag constraint (None: no constraint, all ids)."""
        matched = None if within is None else within & self._ids
        for key, kind, wanted in _constraints(user):
            table = self._by_tag if kind == "Tag" else self._by_class
            ids = set().union(*(table.get((key, value), ()) for value in set(wanted)))
            if "Others" in wanted:
                ids |= self._ids - self._has_key.get(key, set())
            matched = ids if matched is None else matched & ids
        return matched

    def search(self, user: dict[str, Any], within: set[str] | None = None, min_fuzzy_score: float = FUZZY_MIN_SCORE) -> SemanticMatches:
        """Learnwares matching the user's semantic spec, optionally only among `within` ids."""
        tagged = self._tag_matches(user, within)
        query = text_query(user)
        if not query:
            return SemanticMatches(None if tagged is None else dict.fromkeys(tagged, 1.0), fuzzy=False)
        ids = sorted(self._ids if tagged is None else tagged)
        exact = {i: 1.0 for i in ids if query in self._texts[i][0] or query in self._texts[i][1]}
        if exact or not ids:
            return SemanticMatches(exact, fuzzy=False)
        names = [self._texts[i][0] for i in ids]
        descriptions = [self._texts[i][1] for i in ids]
        ratios = np.maximum(
            process.cdist([query], names, scorer=fuzz.partial_ratio)[0],
            process.cdist([query], descriptions, scorer=fuzz.partial_ratio)[0],
        )
        return SemanticMatches({i: float(r) / 100.0 for i, r in zip(ids, ratios) if r >= min_fuzzy_score}, fuzzy=True)
