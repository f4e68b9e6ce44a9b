"""The reusers' combination logic (lwm.reuse.reusers) on learnwares given as plain functions."""

from __future__ import annotations

import numpy as np
import pytest
from reuse_testing import Model, Runner
from scipy.special import softmax

from lwm.reuse.reusers import (
    AveragingReuser,
    EnsemblePruningReuser,
    FeatureAugmentReuser,
    JobSelectorReuser,
    PruningScore,
    average,
    predict_in_blocks,
)
from lwm.spec import RKMETableSpecification


def spec_of(x: np.ndarray) -> RKMETableSpecification:
    spec = RKMETableSpecification(device="cpu")
    spec.generate_stat_spec_from_data(x)
    return spec


CENTERS = np.array([[0.0, 0.0, 0.0], [8.0, 0.0, 0.0], [0.0, 8.0, 0.0]])


def region(i: int, n: int, rng: np.random.Generator) -> np.ndarray:
    return CENTERS[i] + rng.normal(size=(n, 3))


@pytest.fixture(scope="module")
def region_specs() -> list[RKMETableSpecification]:
    rng = np.random.default_rng(0)
    return [spec_of(region(i, 300, rng)) for i in range(3)]


# ----- averaging -------------------------------------------------------------


def test_mean_of_regressors() -> None:
    out = average([np.array([1.0, 2.0]), np.array([[3.0], [4.0]])], "mean")
    np.testing.assert_allclose(out, [2.0, 3.0])


def test_mean_of_class_scores_keeps_the_classes() -> None:
    out = average([np.array([[1.0, 3.0]]), np.array([[3.0, 1.0]])], "mean")
    np.testing.assert_allclose(out, [[2.0, 2.0]])


def test_vote_by_label_uses_argmax_of_scores() -> None:
    a = np.array([[0.9, 0.1], [0.2, 0.8]])
    b = np.array([0, 1])
    c = np.array([1, 1])
    np.testing.assert_array_equal(average([a, b, c], "vote_by_label"), [0, 1])


def test_vote_by_label_tie_goes_to_the_smaller_label() -> None:
    np.testing.assert_array_equal(average([np.array([2, 1]), np.array([1, 2])], "vote_by_label"), [1, 1])


def test_vote_by_prob_is_mean_of_softmax() -> None:
    a = np.array([[2.0, 0.0]])
    b = np.array([[0.0, 1.0]])
    np.testing.assert_allclose(average([a, b], "vote_by_prob"), (softmax(a, axis=1) + softmax(b, axis=1)) / 2)


def test_averaging_errors() -> None:
    with pytest.raises(ValueError, match="mode"):
        average([np.zeros(2)], "median")
    with pytest.raises(ValueError, match="rows"):
        average([np.zeros(2), np.zeros(3)], "mean")
    with pytest.raises(ValueError, match="width"):
        average([np.zeros((2, 2)), np.zeros((2, 3))], "vote_by_prob")
    with pytest.raises(ValueError, match="integer labels"):
        average([np.array([0.5, 1.0])], "vote_by_label")


def test_averaging_reuser_runs_every_learnware_on_all_rows() -> None:
    run = Runner([lambda x: x[:, 0], lambda x: 3 * x[:, 0]])
    x = np.arange(6.0).reshape(3, 2)
    np.testing.assert_allclose(AveragingReuser(["a", "b"], "mean").predict(x, run), 2 * x[:, 0])
    assert sorted(run.jobs) == [(0, 3), (1, 3)]


# ----- job selector ----------------------------------------------------------


def test_job_selector_routes_a_mixture_user_to_its_regions(region_specs: list[RKMETableSpecification]) -> None:
    rng = np.random.default_rng(1)
    x = np.vstack([region(0, 200, rng), region(2, 200, rng)])
    truth = np.repeat([0, 2], 200)
    selector = JobSelectorReuser(["r0", "r1", "r2"], region_specs)
    chosen = selector.select(x)
    assert (chosen == truth).mean() >= 0.99
    np.testing.assert_allclose(selector.weights_used, [0.5, 0.0, 0.5], atol=0.05)
    # Each learnware answers with its own index: the output says who was chosen per row.
    run = Runner([lambda rows, i=i: np.full((rows.shape[0], 2), float(i)) for i in range(3)])
    out = selector.predict(x, run)
    assert out.shape == (400, 2)
    np.testing.assert_array_equal(out[:, 0], chosen)
    assert {i for i, _ in run.jobs} == {0, 2}, "a learnware with no rows is not run"


def test_job_selector_with_the_users_spec_routes_single_rows(region_specs: list[RKMETableSpecification]) -> None:
    rng = np.random.default_rng(2)
    user = spec_of(np.vstack([region(1, 300, rng), region(2, 300, rng)]))
    selector = JobSelectorReuser(["r0", "r1", "r2"], region_specs, user_spec=user)
    np.testing.assert_allclose(selector.weights, [0.0, 0.5, 0.5], atol=0.05)
    for i in (1, 2):
        assert selector.select(region(i, 1, rng))[0] == i


def test_job_selector_fit_fixes_the_weights_for_later_blocks(region_specs: list[RKMETableSpecification]) -> None:
    rng = np.random.default_rng(3)
    x = np.vstack([region(0, 300, rng), region(1, 100, rng)])
    selector = JobSelectorReuser(["r0", "r1", "r2"], region_specs)
    selector.fit(x)
    np.testing.assert_allclose(selector.weights, [0.75, 0.25, 0.0], atol=0.05)
    selector.select(x[:5])
    np.testing.assert_array_equal(selector.weights_used, selector.weights)


def test_job_selector_with_one_learnware_sends_every_row_to_it(region_specs: list[RKMETableSpecification]) -> None:
    run = Runner([lambda x: x[:, 0]])
    x = region(1, 10, np.random.default_rng(4))
    np.testing.assert_allclose(JobSelectorReuser(["only"], region_specs[:1]).predict(x, run), x[:, 0])


def test_job_selector_embeds_texts_and_runs_the_learnwares_on_the_texts(region_specs: list[RKMETableSpecification]) -> None:
    rng = np.random.default_rng(6)
    points = {f"text {i} {j}": region(i, 1, rng)[0] for i in (0, 2) for j in range(20)}
    texts = np.array(list(points))
    selector = JobSelectorReuser(["r0", "r1", "r2"], region_specs, embed=lambda batch: np.array([points[t] for t in batch]))
    run = Runner([lambda rows, i=i: np.array([[float(i), float(len(t))] for t in rows]) for i in range(3)])
    out = np.vstack([block for _, block in predict_in_blocks(selector, texts, run, 7)])
    np.testing.assert_array_equal(out[:, 0], np.repeat([0.0, 2.0], 20))
    np.testing.assert_array_equal(out[:, 1], [len(t) for t in texts])
    with pytest.raises(ValueError, match="no embedder"):
        JobSelectorReuser(["r0"], region_specs[:1]).select(texts)


def test_averaging_and_pruning_take_texts_as_rows() -> None:
    texts = np.array(["good", "bad", "good!", "bad?"])
    run = Runner([lambda rows: np.array([[0.0, 1.0] if t.startswith("good") else [1.0, 0.0] for t in rows]), lambda rows: np.zeros((len(rows), 2))])
    np.testing.assert_array_equal(AveragingReuser(["a"], "vote_by_label").predict(texts, run), [1, 0, 1, 0])
    pruning = EnsemblePruningReuser(["a", "b"], "classification")
    pruning.fit(texts, np.array([1, 0, 1, 0]), run)
    assert pruning.selected == [0]
    with pytest.raises(ValueError, match=r"texts must have shape \(n,\)"):
        AveragingReuser(["a"]).predict(np.array([["a", "b"]]), run)
    with pytest.raises(ValueError, match=r"must have shape \(n, features...\)"):
        FeatureAugmentReuser(["a"], "classification").fit(texts, np.array([1, 0, 1, 0]), run)


def test_job_selector_errors(region_specs: list[RKMETableSpecification]) -> None:
    with pytest.raises(ValueError, match="specifications for 3 learnwares"):
        JobSelectorReuser(["a", "b", "c"], region_specs[:2])
    other_dim = spec_of(np.random.default_rng(5).normal(size=(50, 4)))
    with pytest.raises(ValueError, match="different feature dimensions"):
        JobSelectorReuser(["a", "b"], [region_specs[0], other_dim])
    with pytest.raises(ValueError, match="user's specification has 4 features"):
        JobSelectorReuser(["a", "b"], region_specs[:2], user_spec=other_dim)
    selector = JobSelectorReuser(["a", "b"], region_specs[:2])
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        selector.select(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="n > 0"):
        selector.select(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="no NaN or inf"):
        selector.select(np.array([[0.0, np.nan, 1.0]]))
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        JobSelectorReuser(["only"], region_specs[:1]).select(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="more than once"):
        JobSelectorReuser(["a", "a"], region_specs[:2])
    # A learnware that answers with the wrong number of rows is named.
    bad = Runner([lambda x: x[:, 0], lambda x: x[:1, 0]])
    with pytest.raises(ValueError, match="learnware b returned shape"):
        selector.predict(np.vstack([CENTERS[0], CENTERS[1], CENTERS[1]]) + 0.1, bad)


# ----- ensemble pruning ------------------------------------------------------


def scores_of(labels: np.ndarray, n_classes: int = 3) -> np.ndarray:
    return np.eye(n_classes)[labels]


def test_pruning_drops_a_bad_classifier() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(120, 2))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)

    def noisy(seed: int) -> Model:
        def model(rows: np.ndarray) -> np.ndarray:
            labels = (rows[:, 0] > 0).astype(int) + (rows[:, 1] > 1).astype(int)
            flip = np.random.default_rng(seed).random(rows.shape[0]) < 0.15
            return scores_of(np.where(flip, (labels + 1) % 3, labels))

        return model

    def bad(rows: np.ndarray) -> np.ndarray:
        return scores_of(np.random.default_rng(9).integers(0, 3, rows.shape[0]))

    run = Runner([noisy(1), bad, noisy(2), noisy(3)])
    pruning = EnsemblePruningReuser(["good1", "bad", "good2", "good3"], "classification")
    pruning.fit(x, y, run)
    assert 1 not in pruning.selected and len(pruning.selected) >= 2
    assert "bad" not in pruning.describe().split(":", 1)[1]
    pruned_accuracy = (pruning.predict(x, run) == y).mean()
    assert pruned_accuracy > (AveragingReuser(pruning.names, "vote_by_label").predict(x, run) == y).mean()
    assert pruned_accuracy > max((noisy(s)(x).argmax(1) == y).mean() for s in (1, 2, 3))


def test_pruning_regression_keeps_the_pair_whose_errors_cancel() -> None:
    x = np.linspace(-1, 1, 50).reshape(-1, 1)
    y = 2 * x[:, 0]
    run = Runner([lambda r: 2 * r[:, 0] + 0.5, lambda r: 2 * r[:, 0] - 0.5, lambda r: np.zeros(r.shape[0])])
    pruning = EnsemblePruningReuser(["high", "low", "zero"], "regression")
    pruning.fit(x, y, run)
    assert pruning.selected == [0, 1]
    np.testing.assert_allclose(pruning.predict(x, run), y)


def test_pruning_breaks_label_ties_by_the_scores() -> None:
    sure = np.array([[0.9, 0.1], [0.1, 0.9]])
    unsure = np.array([[0.4, 0.6], [0.6, 0.4]])
    run = Runner([lambda r: sure, lambda r: unsure])
    pruning = EnsemblePruningReuser(["sure", "unsure"], "classification")
    pruning.selected, pruning.score, pruning._n_classes = [0, 1], PruningScore(0, 0, 2), 2
    np.testing.assert_array_equal(pruning.predict(np.zeros((2, 1)), run), [0, 1])


def test_pruning_greedy_beyond_the_exhaustive_limit() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(80, 1))
    y = x[:, 0]
    offsets = [5.0, -5.0, 0.1, -0.1] + [3.0 + i for i in range(9)]
    run = Runner([lambda r, o=o: r[:, 0] + o for o in offsets])
    pruning = EnsemblePruningReuser([f"m{i}" for i in range(len(offsets))], "regression")
    pruning.fit(x, y, run)
    assert pruning.score is not None and pruning.score.loss < 1e-20
    assert set(pruning.selected) in ({2, 3}, {0, 1}, {0, 1, 2, 3})


def test_pruning_errors() -> None:
    run = Runner([lambda r: scores_of(np.zeros(r.shape[0], dtype=int)), lambda r: scores_of(np.zeros(r.shape[0], dtype=int), 4)])
    x = np.zeros((6, 2))
    with pytest.raises(ValueError, match="task must be one of"):
        EnsemblePruningReuser(["a"], "ranking")
    with pytest.raises(ValueError, match="fit on labelled data first"):
        EnsemblePruningReuser(["a"], "classification").predict(x, run)
    with pytest.raises(ValueError, match="different numbers of classes"):
        EnsemblePruningReuser(["a", "b"], "classification").fit(x, np.zeros(6), run)
    with pytest.raises(ValueError, match="score only 3 classes"):
        EnsemblePruningReuser(["a"], "classification").fit(x, np.array([0, 1, 2, 3, 4, 5]), run)
    with pytest.raises(ValueError, match=r"y must have shape \(6,\)"):
        EnsemblePruningReuser(["a"], "classification").fit(x, np.zeros(5), run)
    with pytest.raises(ValueError, match="non-negative integers"):
        EnsemblePruningReuser(["a"], "classification").fit(x, np.full(6, 0.5), run)
    with pytest.raises(ValueError, match="regression reuse needs one"):
        EnsemblePruningReuser(["a"], "regression").fit(x, np.zeros(6), run)


# ----- feature augmentation ---------------------------------------------------


def test_feature_augment_regression_learns_from_the_learnware_output() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(100, 3))

    def target(rows: np.ndarray) -> np.ndarray:
        return 2 * np.sin(3 * rows[:, 0]) + rows[:, 1]

    run = Runner([lambda r: np.sin(3 * r[:, 0])])  # knows the nonlinear part
    augment = FeatureAugmentReuser(["sin"], "regression")
    augment.fit(x, target(x), run)
    x_test = rng.normal(size=(200, 3))
    rmse = np.sqrt(np.mean((augment.predict(x_test, run) - target(x_test)) ** 2))
    assert rmse < 0.05


def test_feature_augment_classification_beats_the_raw_features() -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(150, 2))

    def label(rows: np.ndarray) -> np.ndarray:
        return (np.abs(rows[:, 0]) > 0.8).astype(int)  # not linear in x

    run = Runner([lambda r: scores_of(label(r), 2)])
    augment = FeatureAugmentReuser(["oracle"], "classification")
    augment.fit(x, label(x), run)
    x_test = rng.normal(size=(300, 2))
    assert (augment.predict(x_test, run) == label(x_test)).mean() > 0.95


def test_job_selector_routes_unit_norm_embeddings_despite_a_wide_spec_kernel() -> None:
    # Like text specs: gamma 0.1 over unit-norm embeddings, where squared distances are at most 4.
    rng = np.random.default_rng(12)
    dim = 64
    centres = np.linalg.qr(rng.normal(size=(dim, 2)))[0].T

    def cluster(i: int, n: int) -> np.ndarray:
        x = centres[i] + 0.35 * rng.normal(size=(n, dim)) / np.sqrt(dim)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    user = np.vstack([cluster(0, 70), cluster(1, 30)])
    selector = JobSelectorReuser(["a", "b"], [spec_of(cluster(i, 300)) for i in range(2)], user_spec=spec_of(user))
    assert selector.routing_gamma > 0.5
    assert (selector.select(user) == np.repeat([0, 1], [70, 30])).mean() > 0.95
    assert selector.weights_used[0] > selector.weights_used[1]  # the mixture weights keep the specs' own kernel


def test_feature_augment_does_not_extrapolate_an_outlying_column() -> None:
    rng = np.random.default_rng(10)
    x = rng.normal(size=(100, 2))
    x[:, 1] = x[:, 0] + 0.01 * rng.normal(size=100)  # two nearly identical columns: large opposite coefficients
    y = x[:, 0] + 0.1 * rng.normal(size=100)
    run = Runner([lambda r: r[:, 0]])
    augment = FeatureAugmentReuser(["a"], "regression")
    augment.fit(x, y, run)
    typo = np.array([[0.5, 500.0]])  # one mistyped measurement in the second column
    assert abs(float(augment.predict(typo, run)[0]) - 0.5) < 5.0
    widened = np.array([[x[:, 0].max() * 1.2, x[:, 1].max() * 1.2]])  # a little past the labelled range: still linear
    np.testing.assert_allclose(augment.predict(widened, run), augment.models[0].predict(np.hstack([widened, widened[:, :1]])))


def test_feature_augment_blend_is_the_mean_of_the_augmented_and_the_outputs_only_model() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(80, 3))
    y = np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] + 0.1 * rng.normal(size=80)
    run = Runner([lambda r: np.sin(2 * r[:, 0])])
    blend = FeatureAugmentReuser(["sin"], "regression", blend_outputs_only=True)
    blend.fit(x, y, run)
    alone = FeatureAugmentReuser(["sin"], "regression")
    alone.fit(x, y, run)
    x_test = rng.normal(size=(50, 3)) * 0.5
    outputs_only = blend.models[1].predict(np.sin(2 * x_test[:, :1]))
    np.testing.assert_allclose(blend.predict(x_test, run), 0.5 * (alone.predict(x_test, run) + outputs_only))
    assert "blended" in blend.describe()

    labels = (x[:, 0] + x[:, 1] > 0).astype(int)
    classifier = FeatureAugmentReuser(["s"], "classification", blend_outputs_only=True)
    score_run = Runner([lambda r: scores_of((r[:, 0] + r[:, 1] > 0).astype(int), 2)])
    classifier.fit(x, labels, score_run)
    predicted = classifier.predict(x, score_run)
    assert predicted.shape == (80,) and (predicted == labels).mean() > 0.95


def test_feature_augment_errors() -> None:
    run = Runner([lambda r: r[:, 0]])
    augment = FeatureAugmentReuser(["a"], "classification")
    with pytest.raises(ValueError, match="fit on labelled data first"):
        augment.predict(np.zeros((2, 2)), run)
    with pytest.raises(ValueError, match="at least two classes"):
        augment.fit(np.zeros((4, 2)), np.zeros(4), run)
    augment.fit(np.arange(8.0).reshape(4, 2), np.array([0, 0, 1, 1]), run)
    with pytest.raises(ValueError, match="augmented features"):
        augment.predict(np.zeros((2, 3)), run)


# ----- blocks ----------------------------------------------------------------


def test_predict_in_blocks_covers_every_row_once() -> None:
    run = Runner([lambda r: r[:, 0] * 2])
    x = np.arange(20.0).reshape(10, 2)
    blocks = list(predict_in_blocks(AveragingReuser(["a"]), x, run, block_rows=4))
    assert [offset for offset, _ in blocks] == [0, 4, 8]
    np.testing.assert_allclose(np.concatenate([b for _, b in blocks]), x[:, 0] * 2)
    with pytest.raises(ValueError, match="block_rows"):
        list(predict_in_blocks(AveragingReuser(["a"]), x, run, block_rows=0))
