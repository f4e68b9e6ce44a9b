"""The reference's `learnware.tests.templates`: learnware zips from a pickled model and a stat spec file.

    LearnwareTemplate.generate_learnware_zipfile(
        learnware_zippath="svm.zip",
        model_template=PickleModelTemplate(pickle_filepath="model.pkl", model_kwargs={"input_shape": (64,), "output_shape": (10,), "predict_method": "predict_proba"}),
        stat_spec_template=StatSpecTemplate(filepath="stat_spec.json", type="RKMETableSpecification"),
        requirements=["scikit-learn"],
    )

The zip has the reference's layout (learnware.yaml, __init__.py, model.pkl,
stat_spec.json, requirements.txt) and loads in the reference package too. Its model
class is lwm.learnware.template's `PickledModel` (the reference's is `PickleLoadedModel`):
the same keyword arguments, but it keeps input_shape and output_shape as tuples, which
the reference's checker compares with the model's output shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lwm.learnware.archive import LearnwareConfig, StatSpecEntry
from lwm.learnware.template import MODEL_CLASS_NAME, MODEL_MODULE_SOURCE, PICKLE_FILE, STAT_SPEC_FILE, Requirement, requirements_text, write_learnware_archive
from lwm.learnware.vocabulary import IMAGE_SPEC_TYPE, LEGACY_TABLE_SPEC_TYPE, TABLE_SPEC_TYPE, TEXT_SPEC_TYPE

__all__ = ["LearnwareTemplate", "ModelTemplate", "PickleModelTemplate", "StatSpecTemplate"]

STAT_SPEC_TYPES = (TABLE_SPEC_TYPE, LEGACY_TABLE_SPEC_TYPE, IMAGE_SPEC_TYPE, TEXT_SPEC_TYPE)
MODEL_FILE = "__init__.py"


@dataclass
class ModelTemplate:
    """A model module for a learnware: `class_name` in the Python file `template_path`, built with `model_kwargs`.

    Subclasses may instead override `module_source` (as PickleModelTemplate does).
    """

    class_name: str = field(init=False)
    template_path: str = field(init=False)
    model_kwargs: dict[str, Any] = field(init=False)

    def module_source(self) -> str:
        return Path(self.template_path).read_text(encoding="utf-8")

    def extra_files(self) -> dict[str, bytes]:
        """Files the model needs beside its module, by name in the zip."""
        return {}


@dataclass
class PickleModelTemplate(ModelTemplate):
    """A pickled model (`pickle_filepath`) served through `predict_method`, `fit_method` and `finetune_method`.

    model_kwargs must give input_shape and output_shape; the method names default to
    predict, fit and finetune, and the pickle is stored as `pickle_filename` (model.pkl).
    """

    model_kwargs: dict[str, Any]
    pickle_filepath: str

    def __post_init__(self) -> None:
        missing = [key for key in ("input_shape", "output_shape") if key not in self.model_kwargs]
        if missing:
            raise ValueError(f"PickleModelTemplate model_kwargs must give {' and '.join(missing)}, e.g. {{'input_shape': (64,), 'output_shape': (10,)}}")
        self.class_name = MODEL_CLASS_NAME
        self.template_path = ""  # the module is lwm.learnware.template's MODEL_MODULE_SOURCE
        self.model_kwargs = {"predict_method": "predict", "fit_method": "fit", "finetune_method": "finetune", "pickle_filename": PICKLE_FILE, **self.model_kwargs}

    def module_source(self) -> str:
        return MODEL_MODULE_SOURCE

    def extra_files(self) -> dict[str, bytes]:
        return {str(self.model_kwargs["pickle_filename"]): Path(self.pickle_filepath).read_bytes()}


@dataclass
class StatSpecTemplate:
    """A statistical specification saved as JSON at `filepath`; `type` is its class name."""

    filepath: str
    type: str = TABLE_SPEC_TYPE

    def __post_init__(self) -> None:
        if self.type not in STAT_SPEC_TYPES:
            raise ValueError(f"StatSpecTemplate type must be one of {', '.join(STAT_SPEC_TYPES)}, got {self.type!r}")


def _yaml_value(value: Any) -> Any:
    """Tuples (e.g. input_shape=(64,)) as lists: learnware.yaml is written with yaml.safe_dump."""
    if isinstance(value, (tuple, list)):
        return [_yaml_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _yaml_value(item) for key, item in value.items()}
    return value


class LearnwareTemplate:
    """Writes learnware zips in the reference's layout (the reference's class of the same name)."""

    @staticmethod
    def generate_requirements(filepath: str, requirements: Sequence[Requirement] | None = None) -> None:
        """requirements.txt from strings ("numpy>=1.20") and (name, operator, version) tuples."""
        Path(filepath).write_text(requirements_text(requirements or ()), encoding="utf-8")

    @staticmethod
    def generate_learnware_zipfile(
        learnware_zippath: str,
        model_template: ModelTemplate,
        stat_spec_template: StatSpecTemplate,
        requirements: Sequence[Requirement] | None = None,
    ) -> None:
        config = LearnwareConfig(
            model_class_name=model_template.class_name,
            model_kwargs=_yaml_value(model_template.model_kwargs),
            stat_specs=[StatSpecEntry(module_path="learnware.specification", class_name=stat_spec_template.type, file_name=STAT_SPEC_FILE, kwargs={})],
        )
        files = {
            MODEL_FILE: model_template.module_source().encode(),
            STAT_SPEC_FILE: Path(stat_spec_template.filepath).read_bytes(),
            "requirements.txt": requirements_text(requirements or ()).encode(),
            **model_template.extra_files(),
        }
        write_learnware_archive(learnware_zippath, config, files)
