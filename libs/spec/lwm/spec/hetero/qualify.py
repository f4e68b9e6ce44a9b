"""When a search request can go to the hetero engine (the reference's is_hetero, stricter)."""

from __future__ import annotations

from typing import Any

HETERO_TASKS = ("Classification", "Regression")


def input_descriptions(semantic: dict[str, Any], dimension: int) -> list[str] | None:
    """The descriptions of columns 0..dimension-1 from the semantic spec's Input, or None if any is missing or blank."""
    described = (semantic.get("Input") or {}).get("Description") or {}
    texts = [described.get(str(i), described.get(i)) for i in range(dimension)]
    if any(not isinstance(text, str) or not text.strip() for text in texts):
        return None
    return [str(text).strip() for text in texts]


def hetero_search_problem(semantic: dict[str, Any], table_dim: int | None) -> str | None:
    """Why the request cannot use hetero search (None: it can).

    It needs a table statistical specification (`table_dim` = its feature count), Data
    Table, Task Classification or Regression, and an Input description for every feature
    of the statistical specification.
    """
    if table_dim is None:
        return "hetero search needs an RKMETableSpecification of the user's data"
    data = (semantic.get("Data") or {}).get("Values") or []
    if data and list(data) != ["Table"]:
        return f"hetero search is for table data, the request's Data is {list(data)}"
    task = (semantic.get("Task") or {}).get("Values") or []
    if len(task) != 1 or task[0] not in HETERO_TASKS:
        return f"hetero search needs the Task to be one of {list(HETERO_TASKS)}, the request's Task is {list(task)}"
    declared = (semantic.get("Input") or {}).get("Dimension")
    if declared is None:
        return "hetero search needs the semantic specification's Input (feature descriptions); the request has none"
    if int(declared) != table_dim:
        return f"the Input declares {declared} features but the RKMETableSpecification has {table_dim}"
    if input_descriptions(semantic, table_dim) is None:
        described = len((semantic.get("Input") or {}).get("Description") or {})
        return f"hetero search needs a description of each of the {table_dim} input features; the request describes {described}"
    return None
