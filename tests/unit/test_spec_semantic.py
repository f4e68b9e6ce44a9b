"""Semantic specification: generation and the upload / search-request checkers."""

from __future__ import annotations

import copy

import pytest

from lwm.spec import (
    SemanticSpecError,
    check_semantic_spec,
    check_user_semantic_spec,
    generate_semantic_spec,
    validate_semantic_spec,
)


def valid_spec() -> dict:
    return generate_semantic_spec(
        name="Sales forecast",
        description="Predicts weekly sales",
        data_type="Table",
        task_type="Classification",
        library_type="Scikit-learn",
        scenarios=["Business", "Financial"],
        license="MIT",
        input_description={"Dimension": 3, "Description": {"0": "price", "1": "week", "2": "store"}},
        output_description={"Dimension": 2, "Description": {"0": "low", "1": "high"}},
    )


def test_generate_matches_reference_shape():
    spec = generate_semantic_spec(name="n", scenarios="Health", license="MIT")
    assert spec == {
        "Data": {"Type": "Class", "Values": []},
        "Task": {"Type": "Class", "Values": []},
        "Model": {"Type": "Optional", "Values": ["Others"]},
        "Library": {"Type": "Class", "Values": []},
        "License": {"Type": "Class", "Values": ["MIT"]},
        "Scenario": {"Type": "Tag", "Values": ["Health"]},
        "Name": {"Type": "String", "Values": "n"},
        "Description": {"Type": "String", "Values": ""},
    }


def test_valid_spec_passes():
    assert check_semantic_spec(valid_spec()) == []
    spec = valid_spec()
    del spec["Model"]  # optional
    assert check_semantic_spec(spec) == []
    validate_semantic_spec(valid_spec())


def mutate(path: tuple, value=None, delete: bool = False) -> dict:
    spec = copy.deepcopy(valid_spec())
    target = spec
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return spec


@pytest.mark.parametrize(
    "spec, key, fragment",
    [
        (mutate(("Data",), delete=True), "Data", "missing"),
        (mutate(("Name", "Values"), ""), "Name", "empty"),
        (mutate(("Description", "Values"), 3), "Description", "string"),
        (mutate(("Task", "Values"), []), "Task", "exactly one"),
        (mutate(("Library", "Values"), ["Scikit-learn", "PyTorch"]), "Library", "exactly one"),
        (mutate(("License", "Values"), ["WTFPL"]), "License", "not allowed"),
        (mutate(("Scenario", "Values"), []), "Scenario", "at least one"),
        (mutate(("Scenario", "Values"), ["Space"]), "Scenario", "not allowed"),
        (mutate(("Scenario", "Values"), "Business"), "Scenario", "list"),
        (mutate(("Data", "Type"), "Tag"), "Data", "Type must be 'Class'"),
        (mutate(("Model", "Values"), ["Base Model"]), "Model", "Others"),
        (mutate(("Input",), delete=True), "Input", "required for Table"),
        (mutate(("Input", "Dimension"), "3"), "Input", "positive integer"),
        (mutate(("Input", "Description"), {"3": "x"}), "Input", "out of range"),
        (mutate(("Input", "Description"), {"a": "x"}), "Input", "column index"),
        (mutate(("Input", "Description"), {"0": 5}), "Input", "must be a string"),
        (mutate(("Output",), delete=True), "Output", "required for Classification"),
        (mutate(("Output", "Dimension"), 1), "Output", "> 1"),
        (mutate(("Task", "Values"), ["Segmentation"]), "Task", "not a task for Table"),
        (mutate(("Task",), "Classification"), "Task", "must be an object"),
    ],
)
def test_each_problem_is_reported(spec, key, fragment):
    problems = check_semantic_spec(spec)
    assert problems, "expected a problem"
    assert any(p.startswith(key) and fragment in p for p in problems), problems


def test_several_problems_reported_at_once():
    spec = valid_spec()
    spec["Name"]["Values"] = ""
    spec["License"]["Values"] = ["nope"]
    del spec["Output"]
    problems = check_semantic_spec(spec)
    assert len(problems) == 3, problems
    with pytest.raises(SemanticSpecError) as err:
        validate_semantic_spec(spec)
    assert isinstance(err.value, ValueError)
    assert err.value.problems == problems


def test_regression_and_non_table_rules():
    spec = valid_spec()
    spec["Task"]["Values"] = ["Regression"]
    spec["Output"] = {"Dimension": 1, "Description": {"0": "sales"}}
    assert check_semantic_spec(spec) == []
    text = generate_semantic_spec(
        name="chat", description="LLM", data_type="Text", task_type="Text Generation",
        model_type="Base Model", library_type="PyTorch", scenarios="Computer", license="Apache-2.0",
    )
    assert check_semantic_spec(text) == []
    assert check_semantic_spec("not a dict")


def test_user_spec_is_lenient():
    assert check_user_semantic_spec({}) == []
    assert check_user_semantic_spec(generate_semantic_spec()) == []
    user = generate_semantic_spec(data_type="Table", scenarios=["Business", "Health"])
    user["Task"]["Values"] = ["Classification", "Regression"]  # several acceptable classes
    user["learnware_id"] = {"Values": "00000001"}
    user["Input"] = {"Dimension": 2, "Description": {"0": "a"}}
    assert check_user_semantic_spec(user) == []


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"Colour": {"Type": "Class", "Values": []}}, "Colour: unknown key"),
        ({"Data": {"Type": "Tag", "Values": []}}, "Data: Type must be 'Class'"),
        ({"Data": {"Type": "Class", "Values": "Table"}}, "Data: Values must be a list"),
        ({"Data": {"Type": "Class", "Values": ["Tabular"]}}, "Data: 'Tabular' not allowed"),
        ({"Name": {"Type": "String", "Values": ["x"]}}, "Name: Values must be a string"),
        ({"Data": ["Table"]}, "Data: must be an object"),
        ({"Input": {"Dimension": 0}}, "Input: Dimension must be a positive integer"),
        ({"learnware_id": {"Values": 5}}, "learnware_id"),
    ],
)
def test_user_spec_problems(spec, fragment):
    problems = check_user_semantic_spec(spec)
    assert any(fragment in p for p in problems), problems
