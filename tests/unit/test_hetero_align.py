"""Hetero alignment (lwm.reuse.align) on learnwares given as plain functions of their own columns."""

from __future__ import annotations

import numpy as np
import pytest
from reuse_testing import Runner

from lwm.reuse.align import AffineMap, HeteroAlignReuser, WeightedTable, column_similarity, described_input_count, initial_map, labelled_loss, match_columns
from lwm.spec import RKMETableSpecification
from lwm.spec.text import embed_sentences

# Learnware columns: distinct means and scales, so their distributions tell them apart.
COLUMNS = ["age of the patient in years", "body mass index", "average blood pressure", "blood sugar level", "total serum cholesterol"]
USER_PHRASES = ["patient age", "weight relative to height squared (BMI)", "mean arterial pressure", "glucose concentration in the blood", "cholesterol level in the blood serum"]
MEANS = np.array([50.0, 26.0, 95.0, 5.0, 190.0])
SCALES = np.array([12.0, 4.0, 13.0, 1.0, 35.0])
WEIGHTS = np.array([0.02, 0.3, 0.05, 1.0, 0.01])


def table(n: int, seed: int) -> np.ndarray:
    """Rows in the learnware's columns; columns 0 and 2 correlate (age and blood pressure)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n, len(COLUMNS)))
    noise[:, 2] = 0.8 * noise[:, 0] + 0.6 * noise[:, 2]
    return MEANS + SCALES * noise


def spec_of(x: np.ndarray) -> RKMETableSpecification:
    spec = RKMETableSpecification(device="cpu")
    spec.generate_stat_spec_from_data(x)
    return spec


def regressor(x: np.ndarray) -> np.ndarray:
    return (x - MEANS) @ WEIGHTS


def classifier(x: np.ndarray) -> np.ndarray:
    """Two class scores from the same linear function."""
    score = regressor(x)
    return np.stack([-score, score], axis=1)


def test_permuted_renamed_columns_predict_as_the_learnware_on_its_columns() -> None:
    x_learnware = table(600, seed=0)
    order = [3, 0, 4, 1, 2]
    x = table(400, seed=1)
    user_x = x[:, order]
    reuser = HeteroAlignReuser(["lw"], [spec_of(x_learnware)], "regression", [COLUMNS], [USER_PHRASES[c] for c in order], embed_sentences)
    runner = Runner([regressor])
    reuser.fit(user_x, runner)
    matches = dict(reuser.alignments[0].chosen.feature_map.matches)
    assert matches == {u: learnware_column for u, learnware_column in enumerate(order)}
    aligned = reuser.predict(user_x, runner)
    truth = regressor(x)
    assert np.corrcoef(aligned, truth)[0, 1] > 0.99
    assert np.sqrt(np.mean((aligned - truth) ** 2)) < 0.15 * truth.std()
    assert "lw: 5 of its 5 columns matched (by lowest MMD" in reuser.describe()


def test_columns_match_by_distribution_without_descriptions() -> None:
    order = [2, 4, 0, 3, 1]
    user = WeightedTable.from_spec(spec_of(table(500, seed=2)[:, order]))
    learnware = WeightedTable.from_spec(spec_of(table(500, seed=3)))
    assert match_columns(column_similarity(user, learnware, None, None), 0.5) == list(enumerate(order))


def test_missing_columns_are_imputed_from_correlated_ones() -> None:
    """The user lacks blood pressure (column 2): it is imputed from age, which correlates with it."""
    x_learnware = table(800, seed=4)
    user_columns = [0, 1, 3, 4]
    x = table(400, seed=5)
    learnware = WeightedTable.from_spec(spec_of(x_learnware))
    user = WeightedTable.from_spec(spec_of(x[:, user_columns]))
    pairs = list(enumerate(user_columns))
    feature_map = initial_map(user, learnware, pairs)
    imputed = feature_map(x[:, user_columns])[:, 2]
    assert np.corrcoef(imputed, x[:, 2])[0, 1] > 0.6
    assert abs(imputed.mean() - MEANS[2]) < 0.2 * SCALES[2]
    # A map that leaves the column at its mean does no better than the mean: the imputation beats it.
    assert np.mean((imputed - x[:, 2]) ** 2) < 0.8 * np.mean((MEANS[2] - x[:, 2]) ** 2)


def test_labelled_samples_choose_the_map_and_fit_feature_augmentation() -> None:
    x_learnware = table(600, seed=6)
    order = [1, 3, 0, 2, 4]
    x = table(500, seed=7)
    y = (regressor(x) > 0).astype(np.int64)
    user_x = x[:, order]
    runner = Runner([classifier])
    reuser = HeteroAlignReuser(["lw"], [spec_of(x_learnware)], "classification", [COLUMNS], [USER_PHRASES[c] for c in order], embed_sentences)
    reuser.fit(user_x[100:], runner, user_x[:100], y[:100])
    # The labelled rows under every candidate map went to the learnware in one job.
    assert runner.jobs[0][0] == 0 and runner.jobs[0][1] >= 100 and runner.jobs[0][1] % 100 == 0
    # Chance is 0.5. The map's scaling comes from the specs' estimate of each column's spread, so a
    # few of the 100 rows near the class boundary flip with any change of the spec fit (0.05-0.06 seen).
    assert reuser.alignments[0].labelled_loss is not None and reuser.alignments[0].labelled_loss < 0.1
    predictions = reuser.predict(user_x[100:], runner)
    assert predictions.shape == (400,) and (predictions == y[100:]).mean() > 0.95
    assert "then feature augmentation" in reuser.describe()
    # Fit again without labels: the aligned learnware's own class scores, no augmentation left over.
    reuser.fit(user_x[100:], runner)
    assert reuser.predict(user_x[100:], runner).shape == (400, 2) and "feature augmentation" not in reuser.describe()


def test_user_specification_instead_of_rows() -> None:
    order = [4, 3, 2, 1, 0]
    x = table(400, seed=8)
    reuser = HeteroAlignReuser(["lw"], [spec_of(table(600, seed=9))], "regression")
    runner = Runner([regressor])
    reuser.fit(spec_of(x[:, order]), runner)
    assert np.corrcoef(reuser.predict(x[:, order], runner), regressor(x))[0, 1] > 0.95


def test_clear_errors() -> None:
    spec = spec_of(table(300, seed=10))
    runner = Runner([regressor])
    with pytest.raises(ValueError, match="got 1 specifications for 2 learnwares"):
        HeteroAlignReuser(["a", "b"], [spec], "regression")
    with pytest.raises(ValueError, match="task must be one of"):
        HeteroAlignReuser(["a"], [spec], "ranking")
    with pytest.raises(ValueError, match="describes 2 columns but its specification has 5"):
        HeteroAlignReuser(["a"], [spec], "regression", [["x", "y"]])
    reuser = HeteroAlignReuser(["a"], [spec], "regression", [COLUMNS], ["one", "two"], embed_sentences)
    with pytest.raises(ValueError, match="must be fit"):
        reuser.predict(table(5, seed=11), runner)
    with pytest.raises(ValueError, match="the user describes 2 columns but the data has 3"):
        reuser.fit(table(50, seed=12)[:, :3], runner)
    reuser = HeteroAlignReuser(["a"], [spec], "regression")
    with pytest.raises(ValueError, match="finite numeric table"):
        reuser.fit(np.full((10, 3), np.nan), runner)
    with pytest.raises(ValueError, match="needs both x_train and y_train"):
        reuser.fit(table(50, seed=13)[:, :3], runner, table(10, seed=14)[:, :3])
    reuser.fit(table(50, seed=15)[:, :3], runner)
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        reuser.predict(table(5, seed=16), runner)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 3\)"):
        AffineMap(np.zeros((3, 5)), np.zeros(5))(np.zeros((2, 4)))


def test_described_input_count() -> None:
    assert described_input_count({"Input": {"Dimension": 2, "Description": {"0": "age", "1": "income"}}}) == 2
    assert described_input_count({"Input": {"Description": {"0": "age"}}}) == 1
    assert described_input_count({}) == 0 and described_input_count(None) == 0


def test_labelled_loss_of_regression_outputs_ignores_their_scale_and_offset() -> None:
    y = np.random.default_rng(17).normal(size=50)
    assert labelled_loss(3.0 * y - 7.0, y, "regression") < 1e-12
    assert labelled_loss(np.zeros(50), y, "regression") == pytest.approx(np.var(y))
    assert labelled_loss(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 0]), "classification") == 0.5
