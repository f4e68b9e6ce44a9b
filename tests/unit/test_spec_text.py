"""RKMETextSpecification: offline MiniLM embeddings, embedder bookkeeping, JSON I/O, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lwm.spec import (
    EMBEDDER,
    REFERENCE_EMBEDDER,
    RKMETableSpecification,
    RKMETextSpecification,
    generate_stat_spec,
    load_stat_spec,
)
from lwm.spec.text import check_embedder, embed_sentences

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from spec_fixture_data import SENTENCES

FINANCE, SPORT = SENTENCES["text_a"], SENTENCES["text_b"]


def make_spec(texts, **kwargs) -> RKMETextSpecification:
    spec = RKMETextSpecification(device="cpu")
    spec.generate_stat_spec_from_data(texts, **kwargs)
    return spec


@pytest.fixture(scope="module")
def finance() -> RKMETextSpecification:
    return make_spec(FINANCE)


def test_embeddings_come_from_the_shipped_model_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vectors = embed_sentences(["A cat sits on the mat.", "A kitten rests on a rug.", "Bond yields rose."])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2  # similar meaning, closer


def test_fields(finance):
    assert finance.type == "RKMETextSpecification"
    assert finance.embedder == EMBEDDER
    assert finance.language == ["en"]
    assert finance.get_z().shape == (len(FINANCE) * 2 // 3, 384)
    assert finance.num_points == len(FINANCE)


def test_same_topic_is_closer_than_another_topic(finance):
    finance_again = make_spec(FINANCE[::-1])
    sport = make_spec(SPORT)
    assert abs(finance.dist(finance_again)) < 1e-10  # order does not matter
    assert finance.dist(make_spec(FINANCE[:8])) < finance.dist(sport)


def test_input_types_agree(finance):
    for variant in (tuple(FINANCE), np.array(FINANCE), pd.Series(FINANCE)):
        assert abs(finance.dist(make_spec(variant))) < 1e-10


@pytest.mark.parametrize(
    "X, message",
    [
        ("just one string", "single string"),
        ([], "at least one sentence"),
        (["fine", 3, "also fine"], "item 1 is int"),
        ([b"bytes", "text"], "item 0 is bytes"),
        (42, "sequence of strings"),
    ],
)
def test_bad_input_raises_clear_error(X, message):
    with pytest.raises(ValueError, match=message):
        make_spec(X)


def test_specs_from_other_embedders_are_not_compared(finance):
    foreign = RKMETextSpecification.from_dict({**finance.to_dict(), "embedder": "some/other-model"})
    with pytest.raises(ValueError, match="different embedders"):
        finance.dist(foreign)
    table = RKMETableSpecification.from_dict({**finance.to_dict(), "type": "RKMETableSpecification"})
    with pytest.raises(ValueError, match="cannot compare"):
        finance.dist(table)
    with pytest.raises(ValueError, match="cannot compare"):
        table.inner_prod(finance)


def test_json_round_trip(tmp_path, finance):
    path = tmp_path / "text.json"
    finance.save(path)
    raw = json.loads(path.read_text())
    assert list(raw) == ["z", "beta", "gamma", "num_points", "type", "language", "embedder"]
    loaded = load_stat_spec(path)
    assert isinstance(loaded, RKMETextSpecification)
    assert (loaded.embedder, loaded.language) == (EMBEDDER, ["en"])
    assert abs(loaded.dist(finance)) < 1e-12
    in_place = RKMETextSpecification()
    in_place.load(path)
    assert in_place.embedder == EMBEDDER and abs(in_place.dist(finance)) < 1e-12


def test_reference_files_without_embedder_are_the_reference_model(finance):
    raw = finance.to_dict()
    del raw["embedder"]
    assert load_stat_spec(raw).embedder == REFERENCE_EMBEDDER
    with pytest.raises(ValueError, match="language"):
        load_stat_spec({**raw, "language": "en"})
    check_embedder(finance, "the user's")  # ours: texts embedded here land in its space
    with pytest.raises(ValueError, match="the user's text specification was made with the embedder .*paraphrase-multilingual"):
        check_embedder(load_stat_spec(raw), "the user's")


def test_generate_stat_spec_text_dispatch():
    spec = generate_stat_spec("text", X=SPORT, K=5, cuda_idx=-1)
    assert isinstance(spec, RKMETextSpecification)
    assert spec.get_z().shape == (5, 384)


def test_one_sentence_makes_a_spec() -> None:
    """As the reference: a single sentence (here Chinese) is a specification of its one embedding."""
    spec = generate_stat_spec("text", X=["这是一个关于天气的句子"])
    assert spec.get_z().shape == (1, 384)
    np.testing.assert_array_equal(spec.get_beta(), [1.0])
    np.testing.assert_allclose(spec.get_z()[0], embed_sentences(["这是一个关于天气的句子"])[0], atol=1e-6)
