"""The reference `learnware` README's quick-start workflow against a live market, imports changed only.

The blocks marked README are the reference README's code (its `search_results`
typo fixed); only their import lines differ. The market's address comes from
LWM_MARKET, so `instantiate_learnware_market` is called exactly as in the README.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fixtures.learnwares import build_learnware_zip
from fixtures.learnwares import semantic_spec as fixture_semantic_spec

from lwm.spec import generate_stat_spec
from lwm.testing.synthetic import TableWorld

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    predicted = predictions.argmax(axis=1) if predictions.ndim == 2 else predictions
    return float((predicted == labels).mean())


def test_reference_readme_workflow(market_process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LWM_MARKET", market_process.start())
    world = TableWorld.make(tasks=3, seed=11)
    zip_paths = [world.write_learnware(task, tmp_path)[0] for task in range(3)]
    rng = np.random.default_rng(5)
    test_x, test_y = world.sample_mixture([0, 1], 400, rng)
    train_x, train_y = world.sample_mixture([0, 1], 60, rng)
    unzip_path = tmp_path / "user"
    unzip_path.mkdir()
    generate_stat_spec(type="table", X=test_x).save(str(unzip_path / "rkme.json"))

    # README: Initialize a Learnware Market
    from lwm.client.compat import instantiate_learnware_market

    demo_market = instantiate_learnware_market(market_id="demo", name="easy", rebuild=True)

    # README: Upload Learnware (plus a description and the Input/Output of the table: the
    # semantic checker requires them, the reference's too)
    from lwm.client.compat import generate_semantic_spec

    semantic_spec = generate_semantic_spec(
        name="demo_learnware",
        description="Logistic regression for one region of a table world.",
        data_type="Table",
        task_type="Classification",
        library_type="Scikit-learn",
        scenarios="Education",
        license="MIT",
        input_description=world.semantic_spec(0)["Input"],
        output_description=world.semantic_spec(0)["Output"],
    )
    added = [demo_market.add_learnware(zip_path, semantic_spec) for zip_path in zip_paths]

    # README: Semantic Specification Search
    from lwm.client.compat import BaseUserInfo

    user_info = BaseUserInfo(id="user", semantic_spec=semantic_spec)
    search_result = demo_market.search_learnware(user_info)
    single_result = search_result.get_single_results()
    print(single_result)
    semantic_ids = {item.learnware.id for item in single_result}

    # README: Statistical Specification Search
    import lwm.spec as specification

    user_semantic = generate_semantic_spec(data_type="Table", task_type="Classification", scenarios="Education")
    user_spec = specification.RKMETableSpecification()
    user_spec.load(os.path.join(unzip_path, "rkme.json"))
    user_info = BaseUserInfo(semantic_spec=user_semantic, stat_info={"RKMETableSpecification": user_spec})
    search_result = demo_market.search_learnware(user_info)

    single_result = search_result.get_single_results()
    multiple_result = search_result.get_multiple_results()
    for search_item in single_result:
        print(f"score: {search_item.score}, learnware_id: {search_item.learnware.id}")
    for mixture_item in multiple_result:
        print(f"mixture_score: {mixture_item.score}\n")
        mixture_id = " ".join([learnware.id for learnware in mixture_item.learnwares])
        print(f"mixture_learnware: {mixture_id}\n")

    # README: Reuse Learnwares
    from lwm.client.compat import AveragingReuser, JobSelectorReuser

    reuse_job_selector = JobSelectorReuser(learnware_list=mixture_item.learnwares)
    job_selector_predict_y = reuse_job_selector.predict(user_data=test_x)
    reuse_ensemble = AveragingReuser(learnware_list=mixture_item.learnwares)
    ensemble_predict_y = reuse_ensemble.predict(user_data=test_x)

    from lwm.client.compat import EnsemblePruningReuser, FeatureAugmentReuser

    reuse_ensemble = EnsemblePruningReuser(learnware_list=mixture_item.learnwares, mode="classification")
    reuse_ensemble.fit(train_x, train_y)
    ensemble_pruning_predict_y = reuse_ensemble.predict(user_data=test_x)
    reuse_feature_augment = FeatureAugmentReuser(learnware_list=mixture_item.learnwares, mode="classification")
    reuse_feature_augment.fit(train_x, train_y)
    feature_augment_predict_y = reuse_feature_augment.predict(user_data=test_x)

    # What the workflow must have produced.
    ids = [learnware_id for learnware_id, _ in added]
    assert [status for _, status in added] == [1, 1, 1]  # the reference's USABLE_LEARNWARE
    assert semantic_ids == set(ids)
    assert single_result[0].learnware.id in ids[:2]
    assert {lw.id for lw in multiple_result[0].learnwares} == set(ids[:2])
    assert len(multiple_result[0].weights) == 2 and abs(sum(multiple_result[0].weights) - 1) < 1e-6
    specification_of_best = single_result[0].learnware.get_specification()
    assert specification_of_best.get_semantic_spec()["Name"]["Values"] == "demo_learnware"
    assert specification_of_best.get_stat_spec_by_name("RKMETableSpecification").get_z().shape[1] == world.dim
    assert specification_of_best.get_stat_spec_by_name("RKMEImageSpecification") is None
    assert accuracy(job_selector_predict_y, test_y) > 0.8
    assert accuracy(ensemble_predict_y, test_y) > 0.6
    assert accuracy(ensemble_pruning_predict_y, test_y) > 0.6
    assert accuracy(feature_augment_predict_y, test_y) > 0.6

    # A learnware that fails its checks is not a member of the market, as in the reference.
    broken_id, broken_status = demo_market.add_learnware(build_learnware_zip("missing_module", tmp_path), fixture_semantic_spec())
    assert broken_status == -1 and demo_market.client.get_learnware(broken_id).status == "INVALID"

    # The market's other reference calls.
    assert sorted(demo_market.get_learnware_ids()) == sorted(ids)
    assert len(demo_market) == 3
    assert demo_market.get_learnware_by_ids(ids[2]).id == ids[2]
    assert demo_market.download_learnware(ids[2], tmp_path / "copy.zip").read_bytes() == zip_paths[2].read_bytes()
    assert demo_market.delete_learnware(ids[2]) is True
    assert demo_market.delete_learnware(ids[2]) is False
    assert demo_market.get_learnware_by_ids([ids[2], ids[0]])[0] is None
    demo_market.close()

    rebuilt = instantiate_learnware_market(market_id="demo", name="easy", rebuild=True)
    assert rebuilt.get_learnware_ids() == []
    with pytest.raises(ValueError, match="easy"):
        instantiate_learnware_market(name="hetero")
    rebuilt.close()
