"""Semantic specifications: the reference package's dict format and its checks.

A semantic spec maps a key to {"Type": ..., "Values": ...}::

    {"Data": {"Type": "Class", "Values": ["Table"]},
     "Task": {"Type": "Class", "Values": ["Classification"]},
     "Model": {"Type": "Optional", "Values": ["Others"]},
     "Library": {"Type": "Class", "Values": ["Scikit-learn"]},
     "Scenario": {"Type": "Tag", "Values": ["Business"]},
     "License": {"Type": "Class", "Values": ["MIT"]},
     "Name": {"Type": "String", "Values": "my model"},
     "Description": {"Type": "String", "Values": "what it does"},
     "Input": {"Dimension": 3, "Description": {"0": "age", "1": "...", "2": "..."}},
     "Output": {"Dimension": 2, "Description": {"0": "no", "1": "yes"}}}

Allowed values are those of the reference (learnware 0.4 ``config.py``).
"""

from __future__ import annotations

import copy
from typing import Any

CLASS = "Class"
TAG = "Tag"
STRING = "String"
OPTIONAL = "Optional"  # a Class key that may be left out ("Model")

SEMANTIC_SPEC_CONFIG: dict[str, dict[str, Any]] = {
    "Data": {"Type": CLASS, "Values": ["Table", "Image", "Text"]},
    "Task": {
        "Type": CLASS,
        "Values": [
            "Classification",
            "Regression",
            "Feature Extraction",
            "Segmentation",
            "Object Detection",
            "Text Generation",
            "Others",
        ],
    },
    "Model": {"Type": OPTIONAL, "Values": ["Base Model", "Fine-tuned Model", "PEFT Model", "Others"]},
    "Library": {"Type": CLASS, "Values": ["Scikit-learn", "PyTorch", "TensorFlow", "Others"]},
    "Scenario": {
        "Type": TAG,
        "Values": [
            "Business",
            "Financial",
            "Health",
            "Politics",
            "Computer",
            "Internet",
            "Traffic",
            "Nature",
            "Fashion",
            "Industry",
            "Agriculture",
            "Education",
            "Entertainment",
            "Architecture",
            "Others",
        ],
    },
    "Description": {"Type": STRING, "Values": None},
    "Name": {"Type": STRING, "Values": None},
    "License": {
        "Type": CLASS,
        "Values": [
            "MIT",
            "Apache-2.0",
            "BSD-2-Clause",
            "BSD-3-Clause",
            "GPL-2.0",
            "GPL-3.0",
            "LGPL-2.1",
            "LGPL-3.0",
            "AGPL-3.0",
            "ECL-2.0",
            "AFL-3.0",
            "CC-BY-4.0",
            "CC-BY-SA-4.0",
            "Others",
        ],
    },
}

# Keys that describe feature / output columns rather than {"Type", "Values"}.
IO_KEYS = ("Input", "Output")
# Search requests may also filter by learnware id ({"Values": "<id>"}), as in the reference.
LEARNWARE_ID_KEY = "learnware_id"

# Tasks the reference accepts for each data type.
TASKS_BY_DATA: dict[str, list[str]] = {
    "Table": ["Classification", "Regression", "Feature Extraction", "Others"],
    "Image": ["Classification", "Regression", "Feature Extraction", "Segmentation", "Object Detection", "Others"],
    "Text": ["Classification", "Regression", "Feature Extraction", "Text Generation", "Others"],
}
# Data types whose learnwares must have Model "Others" (only text may be an LLM).
MODEL_OTHERS_ONLY = ("Table", "Image")


class SemanticSpecError(ValueError):
    """A semantic specification is invalid; ``problems`` lists every issue."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid semantic specification: " + "; ".join(self.problems))


def semantic_spec_config() -> dict[str, dict[str, Any]]:
    """A copy of the allowed keys, types and values (reference format)."""
    return copy.deepcopy(SEMANTIC_SPEC_CONFIG)


def allowed_values(key: str) -> list[str] | None:
    """Allowed values of a Class/Tag/Optional key; None for String keys."""
    values = SEMANTIC_SPEC_CONFIG[key]["Values"]
    return None if values is None else list(values)


def generate_semantic_spec(
    name: str | None = None,
    description: str | None = None,
    data_type: str | None = None,
    task_type: str | None = None,
    model_type: str | None = None,
    library_type: str | None = None,
    scenarios: str | list[str] | None = None,
    license: str | list[str] | None = None,
    input_description: dict[str, Any] | None = None,
    output_description: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a semantic spec dict exactly as the reference's function of the same name.

    Unset Class/Tag keys get empty Values (match anything in a search); Model
    defaults to ["Others"]. No validation: see :func:`check_semantic_spec`.
    """
    licenses = [license] if isinstance(license, str) else license
    scenario_list = [scenarios] if isinstance(scenarios, str) else scenarios
    spec: dict[str, Any] = {
        "Data": {"Type": CLASS, "Values": [data_type] if data_type is not None else []},
        "Task": {"Type": CLASS, "Values": [task_type] if task_type is not None else []},
        "Model": {"Type": OPTIONAL, "Values": [model_type] if model_type is not None else ["Others"]},
        "Library": {"Type": CLASS, "Values": [library_type] if library_type is not None else []},
        "License": {"Type": CLASS, "Values": list(licenses) if licenses is not None else []},
        "Scenario": {"Type": TAG, "Values": list(scenario_list) if scenario_list is not None else []},
        "Name": {"Type": STRING, "Values": name if name is not None else ""},
        "Description": {"Type": STRING, "Values": description if description is not None else ""},
    }
    if input_description is not None:
        spec["Input"] = input_description
    if output_description is not None:
        spec["Output"] = output_description
    return spec


def _fmt(values: list[str]) -> str:
    return ", ".join(values)


def _check_entry(key: str, entry: Any, strict: bool) -> list[str]:
    """Problems of one {"Type", "Values"} entry; strict = learnware upload rules."""
    conf = SEMANTIC_SPEC_CONFIG[key]
    expected_type = conf["Type"]
    if not isinstance(entry, dict):
        return [f"{key}: must be an object with 'Type' and 'Values', got {type(entry).__name__}"]
    problems: list[str] = []
    if "Type" in entry or strict:
        if entry.get("Type") != expected_type:
            problems.append(f"{key}: Type must be {expected_type!r}, got {entry.get('Type')!r}")
    if "Values" not in entry:
        if strict:
            problems.append(f"{key}: 'Values' is missing")
        return problems
    values = entry["Values"]
    if expected_type == STRING:
        if not isinstance(values, str):
            problems.append(f"{key}: Values must be a string, got {type(values).__name__}")
        elif strict and not values.strip():
            problems.append(f"{key}: Values must not be empty")
        return problems

    allowed = conf["Values"]
    if not isinstance(values, list):
        return problems + [f"{key}: Values must be a list of strings, got {type(values).__name__}"]
    non_str = [v for v in values if not isinstance(v, str)]
    if non_str:
        problems.append(f"{key}: Values must be strings, got {non_str!r}")
    unknown = [v for v in values if isinstance(v, str) and v not in allowed]
    if unknown:
        problems.append(f"{key}: {_fmt([repr(v) for v in unknown])} not allowed; choose from: {_fmt(allowed)}")
    if strict:
        if expected_type in (CLASS, OPTIONAL) and len(values) == 0:
            problems.append(f"{key}: Values must hold exactly one value, got none; choose from: {_fmt(allowed)}")
        elif expected_type in (CLASS, OPTIONAL) and len(values) != 1:
            problems.append(f"{key}: Values must hold exactly one value, got {len(values)}")
        elif expected_type == TAG and len(values) == 0:
            problems.append(f"{key}: Values must hold at least one value")
    return problems


def _check_io(key: str, io: Any, required_dimension: bool) -> list[str]:
    """Problems of an Input/Output description {"Dimension": int, "Description": {"0": str, ...}}.

    required_dimension (a learnware's spec): Dimension and Description are required and
    every Description key is a column within the Dimension. A search request's Input only
    decides whether hetero search applies, so there a Description that disagrees with the
    Dimension is not an error: hetero_search_problem reports it and the search goes on.
    """
    if not isinstance(io, dict):
        return [f"{key}: must be an object with 'Dimension' and 'Description', got {type(io).__name__}"]
    problems: list[str] = []
    dim = io.get("Dimension")
    if dim is None:
        if required_dimension:
            problems.append(f"{key}: 'Dimension' is missing")
    elif isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        problems.append(f"{key}: Dimension must be a positive integer, got {dim!r}")
        dim = None
    if "Description" not in io:
        if required_dimension:
            problems.append(f"{key}: 'Description' is missing")
        return problems
    desc = io["Description"]
    if not isinstance(desc, dict):
        return problems + [f"{key}: Description must be an object mapping column index to text"]
    for k, v in desc.items():
        if not isinstance(k, str) or not k.isdigit():
            problems.append(f"{key}: Description key {k!r} must be a column index string like '0'")
        elif required_dimension and dim is not None and int(k) >= dim:
            problems.append(f"{key}: Description key {k!r} is out of range [0, {dim})")
        if not isinstance(v, str):
            problems.append(f"{key}: Description of column {k!r} must be a string, got {type(v).__name__}")
    return problems


def _single_value(spec: dict[str, Any], key: str) -> str | None:
    entry = spec.get(key)
    if isinstance(entry, dict):
        values = entry.get("Values")
        if isinstance(values, list) and len(values) == 1 and isinstance(values[0], str):
            return values[0]
    return None


def check_semantic_spec(spec: dict[str, Any]) -> list[str]:
    """Every problem of a learnware's semantic spec for upload; [] means valid.

    Rules of the reference's semantic checker: every key but Model present
    with the right Type; Class/Optional keys hold exactly one allowed value;
    Tag keys at least one, all allowed; String keys non-empty; Table data
    needs Input (Dimension + Description) and a table task; Table/Image
    learnwares have Model "Others"; Classification/Regression need Output
    (Classification with Dimension > 1). Description keys are column indices
    within the Dimension. Unknown extra keys are ignored, as the reference does.
    """
    if not isinstance(spec, dict):
        return [f"semantic specification must be an object, got {type(spec).__name__}"]
    problems: list[str] = []
    for key, conf in SEMANTIC_SPEC_CONFIG.items():
        if key not in spec:
            if conf["Type"] != OPTIONAL:
                problems.append(f"{key}: required key is missing")
            continue
        problems += _check_entry(key, spec[key], strict=True)

    data = _single_value(spec, "Data")
    task = _single_value(spec, "Task")
    model = _single_value(spec, "Model")
    if data in TASKS_BY_DATA and task in SEMANTIC_SPEC_CONFIG["Task"]["Values"] and task not in TASKS_BY_DATA[data]:
        problems.append(f"Task: {task!r} is not a task for {data} data; choose from: {_fmt(TASKS_BY_DATA[data])}")
    if data in MODEL_OTHERS_ONLY and model is not None and model != "Others":
        problems.append(f"Model: must be 'Others' for {data} data, got {model!r}")

    for key in IO_KEYS:
        if key in spec and spec[key] is not None:
            problems += _check_io(key, spec[key], required_dimension=True)
    if data == "Table" and spec.get("Input") is None:
        problems.append("Input: required for Table data (Dimension and a Description per column)")
    if task in ("Classification", "Regression"):
        output = spec.get("Output")
        if output is None:
            problems.append(f"Output: required for {task} (Dimension and a Description per output)")
        elif task == "Classification" and isinstance(output, dict):
            dim = output.get("Dimension")
            if isinstance(dim, int) and not isinstance(dim, bool) and dim == 1:
                problems.append("Output: Dimension must be > 1 for Classification (one per class)")
    return problems


def check_user_semantic_spec(spec: dict[str, Any]) -> list[str]:
    """Problems of a semantic spec sent with a search request; [] means valid.

    Lenient: keys may be missing and Values may be empty (= match anything);
    Class keys may list several acceptable values. Still wrong: unknown keys,
    a wrong Type, Values of the wrong type, values outside the allowed lists,
    malformed Input/Output.
    """
    if not isinstance(spec, dict):
        return [f"semantic specification must be an object, got {type(spec).__name__}"]
    problems: list[str] = []
    known = [*SEMANTIC_SPEC_CONFIG, *IO_KEYS, LEARNWARE_ID_KEY]
    for key, entry in spec.items():
        if key in SEMANTIC_SPEC_CONFIG:
            problems += _check_entry(key, entry, strict=False)
        elif key in IO_KEYS:
            if entry is not None:
                problems += _check_io(key, entry, required_dimension=False)
        elif key == LEARNWARE_ID_KEY:
            if not isinstance(entry, dict) or not isinstance(entry.get("Values"), str):
                problems.append(f"{key}: must be an object whose Values is a string id")
        else:
            problems.append(f"{key!s}: unknown key; expected one of: {_fmt(known)}")
    return problems


def validate_semantic_spec(spec: dict[str, Any], user: bool = False) -> None:
    """Raise SemanticSpecError listing every problem (user=True: search-request rules)."""
    problems = check_user_semantic_spec(spec) if user else check_semantic_spec(spec)
    if problems:
        raise SemanticSpecError(problems)


# When a search request can go to the hetero engine (the reference's is_hetero, stricter).
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
