"""Hetero search requests the reference answers with no results are valid requests here too.

A user's Input only decides whether hetero search applies: when it cannot (a Task no
table learnware has, no Task, an Input Dimension that disagrees with its Descriptions or
with the data), the request is still valid, hetero_search_problem says why, and the
market searches homogeneously (which, for a feature count no learnware has, finds nothing).
"""

from __future__ import annotations

from typing import Any

import pytest

from lwm.spec import check_semantic_spec, check_user_semantic_spec, generate_semantic_spec
from lwm.spec.hetero import hetero_search_problem

DIM = 4


def user_spec(dimension: int = DIM, described: int = DIM, task: str | None = "Regression") -> dict[str, Any]:
    spec = generate_semantic_spec(data_type="Table", task_type=task) if task else generate_semantic_spec(data_type="Table")
    spec["Input"] = {"Dimension": dimension, "Description": {str(i): f"feature {i}" for i in range(described)}}
    if task is None:
        spec.pop("Task", None)
    return spec


def test_a_request_that_qualifies_has_no_problem() -> None:
    spec = user_spec()
    assert check_user_semantic_spec(spec) == []
    assert hetero_search_problem(spec, DIM) is None


def test_descriptions_beyond_the_dimension_are_a_valid_request_that_cannot_go_hetero() -> None:
    spec = user_spec(dimension=DIM - 2, described=DIM)
    assert check_user_semantic_spec(spec) == []
    assert hetero_search_problem(spec, DIM) == f"the Input declares {DIM - 2} features but the RKMETableSpecification has {DIM}"


def test_a_learnwares_spec_still_needs_descriptions_within_its_dimension() -> None:
    spec = generate_semantic_spec(name="lw", description="d", data_type="Table", task_type="Regression", library_type="Scikit-learn", scenarios="Education", license="MIT")
    spec["Input"] = {"Dimension": DIM - 2, "Description": {str(i): f"feature {i}" for i in range(DIM)}}
    spec["Output"] = {"Dimension": 1, "Description": {"0": "target"}}
    assert any("out of range" in problem for problem in check_semantic_spec(spec))


@pytest.mark.parametrize(
    "task, fragment",
    [("Segmentation", "['Segmentation']"), (None, "the request's Task is []")],
)
def test_a_task_hetero_search_does_not_serve_is_a_valid_request(task: str | None, fragment: str) -> None:
    spec = user_spec(task=task)
    if task == "Segmentation":
        spec["Task"] = {"Values": ["Segmentation"], "Type": "Class"}
    assert check_user_semantic_spec(spec) == []
    problem = hetero_search_problem(spec, DIM)
    assert problem is not None and fragment in problem
