"""Text learnwares through a real market (`lwm serve --all`): Predict and Reuse with texts over gRPC."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import MarketProcess
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from lwm.client import MarketClient, MarketError
from lwm.client.cli import main as lwm_main
from lwm.client.reuse import HeteroMapAlignLearnware, JobSelectorReuser
from lwm.learnware.template import write_learnware_zip
from lwm.spec import RKMETextSpecification, generate_semantic_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-all (make test stays under 12 minutes on 2 cores)

TOPICS = {
    "coffee": ["coffee", "espresso", "tea", "latte", "brew"],
    "pets": ["dog food", "cat treats", "puppy chow", "kitten snacks", "pet biscuits"],
}
GOOD = ["great", "delicious", "wonderful", "excellent"]
BAD = ["awful", "terrible", "stale", "disgusting"]


def reviews(topic: str, repeats: int = 1) -> tuple[list[str], np.ndarray]:
    """Short reviews of a topic's products with their labels (1 = good), in a fixed order."""
    texts, labels = [], []
    for _, noun, (words, label) in itertools.product(range(repeats), TOPICS[topic], ((GOOD, 1), (BAD, 0))):
        for word in words:
            texts.append(f"This {noun} is {word}, I think the {noun} tastes {word}.")
            labels.append(label)
    return texts, np.array(labels)


@dataclass
class TextMarket:
    address: str
    ids: dict[str, str]  # topic -> learnware id
    models: dict[str, Pipeline]


def _text_spec(texts: list[str]) -> RKMETextSpecification:
    spec = RKMETextSpecification()
    spec.generate_stat_spec_from_data(texts, K=8)
    return spec


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TextMarket]:
    folder = tmp_path_factory.mktemp("text-market")
    process = MarketProcess(folder / "data", folder / "market.log")
    address = process.start()
    try:
        ids, models = {}, {}
        with MarketClient(address) as client:
            for topic in TOPICS:
                texts, labels = reviews(topic)
                models[topic] = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000)).fit(texts, labels)
                semantic = generate_semantic_spec(
                    name=f"reviews-{topic}", description=f"sentiment of {topic} reviews", data_type="Text", task_type="Classification",
                    library_type="Scikit-learn", scenarios=["Business"], license="MIT",
                    output_description={"Dimension": 2, "Description": {"0": "bad", "1": "good"}},
                )
                zip_path = write_learnware_zip(folder / f"{topic}.zip", models[topic], semantic, _text_spec(texts), input_shape=(1,), output_shape=(2,), requirements=["scikit-learn", "numpy"])
                ids[topic] = client.add_learnware(zip_path, semantic, wait=False).id
            for learnware_id in ids.values():  # checked in the background, in parallel
                learnware = client.wait_until_checked(learnware_id)
                assert learnware.status == "USABLE", learnware.check_report
        yield TextMarket(address, ids, models)
    finally:
        process.stop()


def test_predict_runs_a_text_learnware_on_texts(market: TextMarket) -> None:
    texts = ["This espresso is great, I think the espresso tastes great.", "", "Ce café est délicieux ☕", "This tea is stale, I think the tea tastes stale."]
    with MarketClient(market.address) as client:
        from_list = client.predict(market.ids["coffee"], texts)
        from_array = client.predict(market.ids["coffee"], np.array(texts))
    np.testing.assert_allclose(from_list, market.models["coffee"].predict_proba(texts), rtol=1e-6)
    np.testing.assert_array_equal(from_array, from_list)
    assert from_list.argmax(axis=1)[[0, 3]].tolist() == [1, 0]


def test_reuse_with_texts_averaging_job_selector_and_ensemble_pruning(market: TextMarket) -> None:
    coffee, coffee_labels = reviews("coffee")
    pets, pet_labels = reviews("pets")
    texts, labels = coffee + pets, np.concatenate([coffee_labels, pet_labels])
    ids = [market.ids["coffee"], market.ids["pets"]]
    with MarketClient(market.address) as client:
        averaged = client.reuse(ids, texts, "averaging", mode="vote_by_prob", block_rows=7)
        assert averaged.predictions.shape == (len(texts), 2)
        assert (averaged.predictions.argmax(axis=1) == labels).mean() > 0.9

        # Each review goes to its topic's learnware: the predictions are that learnware's own.
        for user_spec in (None, _text_spec(texts)):
            selected = client.reuse(ids, texts, "job_selector", user_spec=user_spec, block_rows=16)
            expected = np.concatenate([market.models["coffee"].predict_proba(coffee), market.models["pets"].predict_proba(pets)])
            np.testing.assert_allclose(selected.predictions, expected, rtol=1e-6)
            assert "job selector over 2 learnwares" in selected.messages[0]

        pruned = client.reuse(ids, pets, "ensemble_pruning", task="classification", train_x=pets[::2], train_y=pet_labels[::2])
        assert (pruned.predictions == pet_labels).mean() > 0.9 and "ensemble pruning kept" in pruned.messages[0]


def test_local_job_selector_routes_texts_by_the_learnwares_text_specs(market: TextMarket) -> None:
    coffee, _ = reviews("coffee")
    pets, _ = reviews("pets")
    with MarketClient(market.address) as client, client.load_learnware(market.ids["coffee"]) as first, client.load_learnware(market.ids["pets"]) as second:
        selector = JobSelectorReuser([first, second], user_spec=_text_spec(coffee + pets))
        expected = np.concatenate([market.models["coffee"].predict_proba(coffee), market.models["pets"].predict_proba(pets)])
        np.testing.assert_allclose(selector.predict(coffee + pets), expected, rtol=1e-6)
        with pytest.raises(ValueError, match="is a text learnware"):
            HeteroMapAlignLearnware(first, "classification").align(np.zeros((4, 2)))


def test_texts_are_refused_where_numeric_columns_are_needed(market: TextMarket) -> None:
    texts, labels = reviews("coffee")
    ids = [market.ids["coffee"]]
    with MarketClient(market.address) as client:
        for method in ("feature_augment", "hetero_align"):
            with pytest.raises(MarketError) as error:
                client.reuse(ids, texts, method, task="classification", train_x=texts, train_y=labels)
            assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert "needs numeric columns" in error.value.message and all(name in error.value.message for name in ("averaging", "job_selector", "ensemble_pruning"))
        with pytest.raises(MarketError) as error:
            client.reuse(ids, texts, "ensemble_pruning", task="classification", train_x=np.zeros((len(labels), 3)), train_y=labels)
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "both be texts or both numbers" in error.value.message
        with pytest.raises(MarketError) as error:
            client.reuse(ids, [["a", "b"], ["c", "d"]], "averaging")
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "shape (n,)" in error.value.message
        with pytest.raises(ValueError, match="single string"):
            client.predict(ids[0], "one text")


def test_cli_reuse_reads_texts_from_a_txt_file(market: TextMarket, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts, labels = reviews("coffee")
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    args = ["--market", market.address, "reuse", "--method", "averaging", "--mode", "vote_by_label", "--quiet", "--ids", *market.ids.values(), "--data", str(tmp_path / "texts.txt"), "-o", str(tmp_path / "out.csv")]
    assert lwm_main(args) == 0
    assert f"wrote {len(texts)} predictions" in capsys.readouterr().out
    assert (np.loadtxt(tmp_path / "out.csv", delimiter=",") == labels).mean() > 0.9
