"""The hetero engine: table learnwares with different columns in one specification space.

- `train_engine` / `HeteroEngine` (engine.py): the column-description + value encoder, its
  contrastive training on pseudo-rows herded from RKME specs, checkpoints as bytes.
- `HeteroMap` (map.py): the reference's name and calls for an engine.
- `HeteroMapTableSpecification` (spec.py): a table spec mapped into the engine's space.
- `hetero_search_problem` / `input_descriptions` (lwm.learnware.semantic): when a request can use it.
"""

from lwm.learnware.semantic import HETERO_TASKS, hetero_search_problem, input_descriptions
from lwm.learnware.vocabulary import HETERO_SPEC_TYPE

from .engine import EngineConfig, HeteroEngine, TrainingTable, description_embeddings, herd_training_table, train_engine
from .map import HeteroMap
from .spec import HeteroMapTableSpecification

__all__ = [
    "EngineConfig",
    "HETERO_SPEC_TYPE",
    "HETERO_TASKS",
    "HeteroEngine",
    "HeteroMap",
    "HeteroMapTableSpecification",
    "TrainingTable",
    "description_embeddings",
    "hetero_search_problem",
    "herd_training_table",
    "input_descriptions",
    "train_engine",
]
