"""The hetero table world: tasks, column subsets and phrasings, learnware zips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lwm.learnware.archive import LearnwareArchive
from lwm.learnware.hetero_world import HeteroTableWorld, load_dataset
from lwm.spec import check_semantic_spec, check_user_semantic_spec


@pytest.mark.parametrize("dataset", ["diabetes", "wine", "breast_cancer"])
def test_tables_show_their_columns_with_their_phrasing(dataset: str) -> None:
    world = HeteroTableWorld.make(dataset, tasks=3, seed=2)
    data = load_dataset(dataset)
    all_rows = np.concatenate(world.task_rows)
    assert sorted(all_rows.tolist()) == list(range(len(data.y)))  # tasks partition the rows
    for task in range(world.tasks):
        learnware, user = world.learnware_table(task), world.user_table(task)
        assert learnware.x.shape[1] == len(learnware.columns) == len(learnware.descriptions)
        assert learnware.descriptions == [data.columns[c][0] for c in learnware.columns]
        assert user.descriptions == [data.columns[c][1] for c in user.columns]
        assert user.columns != learnware.columns
        # Each row of a table is its dataset row restricted to the table's columns.
        rows = [np.flatnonzero((data.x[:, learnware.columns] == row).all(1)) for row in learnware.x[:3]]
        assert all(len(found) >= 1 for found in rows)
        if data.task == "classification":
            assert set(np.unique(learnware.y)) == set(range(data.n_classes))  # every task holds every class
        assert check_semantic_spec(world.semantic_spec(task)) == []
        assert check_user_semantic_spec(world.user_semantic_spec(user)) == []


def test_learnware_zip_holds_the_model_of_its_columns(tmp_path: Path) -> None:
    world = HeteroTableWorld.make("wine", tasks=3)
    zip_path, semantic = world.write_learnware(1, tmp_path)
    assert semantic["Input"]["Dimension"] == len(world.learnware_columns[1])
    learnware = LearnwareArchive.from_path(zip_path)
    assert learnware.config.model_kwargs["input_shape"] == [len(world.learnware_columns[1])]
    assert learnware.config.model_kwargs["output_shape"] == [3]
