"""Beimingwu's LearnwareClient (lwm.client.compat) on a live market: every method, as the reference's users call them."""

from __future__ import annotations

import hashlib
import pickle
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import MarketProcess
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from lwm.client.compat import (
    AveragingReuser,
    BaseUserInfo,
    LearnwareCheckError,
    LearnwareClient,
    LearnwaresContainer,
    LearnwareTemplate,
    PickleModelTemplate,
    SemanticSpecificationKey,
    StatSpecTemplate,
    generate_semantic_spec,
)
from lwm.client.errors import NotFoundError
from lwm.spec import generate_rkme_table_spec

# Five services on a machine shared with other test suites may take minutes to start.
MARKET_START_TIMEOUT_S = 600


def semantic(name: str, dimension: int = 64) -> dict:
    return generate_semantic_spec(
        name=name,
        description=f"{name}: digits from 8x8 pixels",
        data_type="Table",
        task_type="Classification",
        library_type="Scikit-learn",
        scenarios="Education",
        license="MIT",
        input_description={"Dimension": dimension, "Description": {str(i): f"pixel {i // 8}{i % 8}" for i in range(dimension)}},
        output_description={"Dimension": 10, "Description": {str(i): f"probability of digit {i}" for i in range(10)}},
    )


GROUPS = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))


class Digits:
    """Two digit classifiers (10 classes), each trained mostly on one group of digits, zipped with the compat templates."""

    def __init__(self, folder: Path) -> None:
        X, y = load_digits(return_X_y=True)
        self.X, self.y = X, y
        self.models: list[LogisticRegression] = []
        self.zips: list[Path] = []
        for index, digits in enumerate(GROUPS):
            main, others = np.isin(y, digits), ~np.isin(y, digits)
            train_x = np.vstack([X[main][:300], X[others][:40]])
            train_y = np.concatenate([y[main][:300], y[others][:40]])
            model = LogisticRegression(max_iter=300).fit(train_x, train_y)
            work = folder / f"lw{index}"
            work.mkdir()
            (work / "model.pkl").write_bytes(pickle.dumps(model))
            generate_rkme_table_spec(X=train_x, gamma=0.1, reduced_set_size=20).save(str(work / "stat_spec.json"))
            zip_path = folder / f"digits_{index}.zip"
            LearnwareTemplate.generate_learnware_zipfile(
                str(zip_path),
                PickleModelTemplate(pickle_filepath=str(work / "model.pkl"), model_kwargs={"input_shape": (64,), "output_shape": (10,), "predict_method": "predict_proba"}),
                StatSpecTemplate(filepath=str(work / "stat_spec.json")),
                requirements=["scikit-learn", "numpy"],
            )
            self.models.append(model)
            self.zips.append(zip_path)

    def rows_of(self, index: int) -> np.ndarray:
        """Rows of one group the models were not trained on."""
        return self.X[np.isin(self.y, GROUPS[index])][300:340]


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("client-market")
    process = MarketProcess(folder / "data", folder / "market.log")
    yield process.start(timeout_s=MARKET_START_TIMEOUT_S)
    process.stop()


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Digits:
    return Digits(tmp_path_factory.mktemp("digits"))


@pytest.mark.integration
@pytest.mark.slow
def test_client_round_trip(market: str, digits: Digits, tmp_path: Path) -> None:
    client = LearnwareClient(host=market)
    assert client.is_connected() and not client.is_login()
    with pytest.raises(PermissionError, match="needs a login"):
        client.upload_learnware(digits.zips[0], semantic("digits low"))

    client.login("dev@example.org", "any-token")  # the market runs without a tokens file: any token is accepted
    assert client.is_login() and client.email == "dev@example.org"
    with pytest.raises(ValueError, match="semantic specification check failed"):
        client.upload_learnware(digits.zips[0], {"Data": {"Values": ["Table"], "Type": "Class"}})

    ids = [client.upload_learnware(zip_path, semantic(f"digits {i}")) for i, zip_path in enumerate(digits.zips)]
    for learnware_id in ids:
        assert client.market.wait_until_checked(learnware_id, timeout_s=600).status == "USABLE", client.get_learnware_info(learnware_id)["check_report"]
    info = client.get_learnware_info(ids[0])
    assert info["learnware_id"] == ids[0] and info["status"] == "USABLE"
    assert {item["learnware_id"] for item in client.list_learnware()} >= set(ids)

    assert client.get_semantic_specification(ids[1])["Name"]["Values"] == "digits 1"
    renamed = semantic("digits high")
    client.update_learnware(ids[1], renamed)
    assert client.get_semantic_specification(ids[1])["Name"]["Values"] == "digits high"
    with pytest.raises(TypeError, match="learnware_zip_path is not supported"):
        client.update_learnware(ids[1], renamed, learnware_zip_path=digits.zips[1])

    saved = tmp_path / "downloaded.zip"
    client.download_learnware(ids[0], saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == info["zip_sha256"]

    user_spec = generate_rkme_table_spec(X=digits.rows_of(1), gamma=0.1, reduced_set_size=20)
    user_info = BaseUserInfo(semantic_spec=generate_semantic_spec(data_type="Table", task_type="Classification"), stat_info={"RKMETableSpecification": user_spec})
    result = client.search_learnware(user_info)
    assert result["single"]["learnware_ids"] and set(result["single"]["learnware_ids"]) <= set(ids)  # the searcher keeps only close singles
    assert len(result["single"]["matching"]) == len(result["single"]["semantic_specifications"]) == len(result["single"]["learnware_ids"])
    names = {i: spec["Name"]["Values"] for i, spec in zip(result["single"]["learnware_ids"], result["single"]["semantic_specifications"])}
    assert names.get(ids[1], "digits high") == "digits high" and names.get(ids[0], "digits 0") == "digits 0"
    second_page = client.search_learnware(user_info, page_size=1, page_index=1)
    assert second_page["single"]["learnware_ids"] == result["single"]["learnware_ids"][1:2]
    everything = client.search_learnware(BaseUserInfo(semantic_spec=generate_semantic_spec(), stat_info={}), page_size=None)
    assert everything["single"]["learnware_ids"] and set(everything["single"]["learnware_ids"]) <= set(ids)
    with pytest.raises(ValueError, match="at most one statistical specification"):
        client.search_learnware(BaseUserInfo(stat_info={"RKMETableSpecification": user_spec, "RKMETextSpecification": user_spec}))

    client.delete_learnware(ids[0])
    with pytest.raises(NotFoundError):
        client.get_learnware_info(ids[0])
    client.logout()
    assert not client.is_login()
    with pytest.raises(PermissionError):
        client.delete_learnware(ids[1])
    client.close()


@pytest.mark.integration
@pytest.mark.slow
def test_load_learnware_and_container(market: str, digits: Digits, tmp_path: Path) -> None:
    with LearnwareClient(host=market) as client:
        client.login("dev@example.org", "any-token")
        ids = [client.upload_learnware(zip_path, semantic(f"load {i}")) for i, zip_path in enumerate(digits.zips)]
        for learnware_id in ids:
            assert client.market.wait_until_checked(learnware_id, timeout_s=600).status == "USABLE"
        x = np.vstack([digits.rows_of(0)[:10], digits.rows_of(1)[:10]])

        by_id = client.load_learnware(learnware_id=ids, runnable_option="conda")
        assert isinstance(by_id, list) and [lw.id for lw in by_id] == ids and all(lw.started for lw in by_id)
        for learnware, model in zip(by_id, digits.models):
            np.testing.assert_allclose(learnware.predict(x), model.predict_proba(x), rtol=1e-6)
        averaged = AveragingReuser(by_id, mode="vote_by_prob").predict(x)
        assert averaged.shape[0] == len(x)

        single = client.load_learnware(learnware_path=str(digits.zips[0]))
        assert not isinstance(single, list) and single.id == "test_id" and not single.started
        with LearnwaresContainer(single, ignore_error=False, mode="conda") as container:
            started = container.get_learnwares_with_container()
            assert container.get_learnware_flags() == [True] and started == [single] and single.started
            np.testing.assert_allclose(started[0].predict(x), digits.models[0].predict_proba(x), rtol=1e-6)
        assert not single.started  # stopped on exit

        with pytest.raises(ValueError, match="runnable_option must be one of"):
            client.load_learnware(learnware_id=ids[0], runnable_option="venv")
        with pytest.raises(ValueError, match="needs learnware_path or learnware_id"):
            client.load_learnware()


@pytest.mark.integration
@pytest.mark.slow
def test_container_leaves_out_a_learnware_that_cannot_start(market: str, digits: Digits, tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(digits.zips[0]) as source, zipfile.ZipFile(broken, "w") as target:
        for name in source.namelist():
            if name != "model.pkl":
                target.writestr(name, source.read(name))
    with LearnwareClient(host=market) as client:
        learnwares = client.load_learnware(learnware_path=[str(digits.zips[0]), str(broken)])
        assert isinstance(learnwares, list)
        with LearnwaresContainer(learnwares, mode="conda") as container:
            assert container.get_learnware_flags() == [True, False]
            assert container.get_learnwares_with_container() == learnwares[:1]
        with pytest.raises(Exception, match="model.pkl"), LearnwaresContainer(learnwares[1:], mode="conda", ignore_error=False):
            pass


@pytest.mark.integration
@pytest.mark.slow
def test_check_learnware_runs_the_market_checks_locally(digits: Digits, tmp_path: Path) -> None:
    report = LearnwareClient.check_learnware(digits.zips[0], semantic("checked"))
    assert [step.name for step in report.steps] == ["semantic", "archive", "stat_spec", "environment", "instantiate", "shapes", "predict"]
    with pytest.raises(LearnwareCheckError, match="INVALID: shapes") as failed:
        LearnwareClient.check_learnware(digits.zips[0], semantic("wrong input", dimension=32))
    assert failed.value.report is not None
    copy = tmp_path / "no_semantic.zip"
    shutil.copyfile(digits.zips[0], copy)
    with pytest.raises(ValueError, match="names no semantic specification"):
        LearnwareClient.check_learnware(copy)
    assert Path(LearnwareClient.install_environment(digits.zips[0])).exists()


def test_semantic_values_and_keywords() -> None:
    client = LearnwareClient(host="127.0.0.1:1")
    assert not client.is_connected()
    assert "Table" in client.list_semantic_specification_values(SemanticSpecificationKey.DATA_TYPE)
    assert "MIT" in client.list_semantic_specification_values(SemanticSpecificationKey.LICENSE)
    with pytest.raises(TypeError, match="call login"):
        LearnwareClient(host="127.0.0.1:1", token="x")
    with pytest.raises(ValueError, match="mode must be one of"):
        LearnwaresContainer([], mode="venv")
    client.close()
