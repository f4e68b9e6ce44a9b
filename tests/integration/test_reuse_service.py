"""Every reuser through a real market (`lwm serve --all`): learnwares run in sandboxed runners."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import MarketProcess

from lwm.client import MarketClient, MarketError
from lwm.client.cli import main as lwm_main
from lwm.client.reuse import AveragingReuser, EnsemblePruningReuser, JobSelectorReuser
from lwm.spec import RKMETableSpecification
from lwm.testing.synthetic import TableWorld

pytestmark = pytest.mark.integration


@dataclass
class Market:
    address: str
    classification: TableWorld
    regression: TableWorld
    class_ids: list[str]
    regression_ids: list[str]
    broken_id: str


def _break_predict(zip_path: Path) -> bytes:
    """The same learnware whose model raises in predict (the checker marks it INVALID)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(buffer, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("__init__.py"):
                data = data.replace(b"        return np.asarray(getattr(self.model, self.predict_method)(X))", b"        raise RuntimeError('broken on purpose')")
            dst.writestr(item, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    folder = tmp_path_factory.mktemp("reuse-market")
    process = MarketProcess(folder / "data", folder / "market.log")
    address = process.start()
    classification = TableWorld.make(tasks=4, seed=3)
    regression = TableWorld.make(tasks=3, seed=4, task="regression")
    try:
        with MarketClient(address) as client:
            ids = {}
            for name, world in (("class", classification), ("reg", regression)):
                ids[name] = []
                for task in range(len(world.centers)):
                    zip_path, semantic = world.write_learnware(task, folder / name)
                    ids[name].append(client.add_learnware(zip_path, semantic, wait=False).id)
            broken_zip = folder / "broken.zip"
            broken_zip.write_bytes(_break_predict(folder / "class" / "learnware-0.zip"))
            broken_id = client.add_learnware(broken_zip, classification.semantic_spec(0), wait=False).id
            for learnware_id in ids["class"] + ids["reg"] + [broken_id]:  # checked in the background, in parallel
                learnware = client.wait_until_checked(learnware_id)
                assert (learnware.status == "USABLE") == (learnware_id != broken_id), learnware.check_report
        yield Market(address, classification, regression, ids["class"], ids["reg"], broken_id)
    finally:
        process.stop()


def user_spec(x: np.ndarray) -> RKMETableSpecification:
    spec = RKMETableSpecification()
    spec.generate_stat_spec_from_data(x)
    return spec


def test_job_selector_routes_a_mixture_user_to_its_learnwares(market: Market) -> None:
    rng = np.random.default_rng(11)
    x0, y0 = market.classification.sample(0, 150, rng)
    x3, y3 = market.classification.sample(3, 150, rng)
    x, y = np.vstack([x0, x3]), np.concatenate([y0, y3])
    ids = market.class_ids
    with MarketClient(market.address) as client:
        result = client.reuse(ids, x, "job_selector")
        own = np.vstack([client.predict(ids[0], x0), client.predict(ids[3], x3)])
        assert result.predictions.shape == (300, market.classification.n_classes)
        routed_right = np.all(np.isclose(result.predictions, own), axis=1).mean()
        assert routed_right >= 0.98
        assert "job selector over 4 learnwares" in result.messages[0]
        accuracy = (result.predictions.argmax(axis=1) == y).mean()
        averaged = client.reuse(ids, x, "averaging", mode="vote_by_prob").predictions
        assert accuracy > 0.85 and accuracy > (averaged.argmax(axis=1) == y).mean()

        # The user's own spec gives the mixture weights: one row at a time is routed as well.
        with_spec = client.reuse(ids, x[:: 30], "job_selector", user_spec=user_spec(x))
        np.testing.assert_allclose(with_spec.predictions, result.predictions[:: 30])

        # Streamed in blocks with progress; the same predictions as in one piece.
        seen: list[tuple[int, int]] = []
        streamed = client.reuse(ids, x, "job_selector", block_rows=64, progress=lambda done, total: seen.append((done, total)))
        assert seen == [(64, 300), (128, 300), (192, 300), (256, 300), (300, 300)]
        np.testing.assert_allclose(streamed.predictions, result.predictions)


def test_regression_reusers(market: Market) -> None:
    rng = np.random.default_rng(12)
    x, y = market.regression.sample_mixture([0, 2], 300, rng)
    x_train, y_train = market.regression.sample_mixture([0, 2], 100, rng)
    ids = market.regression_ids

    def rmse(predictions: np.ndarray) -> float:
        return float(np.sqrt(np.mean((predictions.reshape(-1) - y) ** 2)))

    with MarketClient(market.address) as client:
        singles = [rmse(client.predict(i, x)) for i in ids]
        selector = rmse(client.reuse(ids, x, "job_selector").predictions)
        averaged = rmse(client.reuse(ids, x, "averaging", mode="mean").predictions)
        pruned = client.reuse(ids, x, "ensemble_pruning", task="regression", train_x=x_train, train_y=y_train)
        augmented = rmse(client.reuse(ids, x, "feature_augment", task="regression", train_x=x_train, train_y=y_train).predictions)
    assert selector < min(singles) and selector < averaged
    assert rmse(pruned.predictions) < max(singles) and "ensemble pruning kept" in pruned.messages[0]
    assert augmented < min(singles)


def test_data_dependent_classification_reusers(market: Market) -> None:
    rng = np.random.default_rng(13)
    x, y = market.classification.sample_mixture([1, 2], 300, rng)
    x_train, y_train = market.classification.sample_mixture([1, 2], 100, rng)
    ids = market.class_ids
    with MarketClient(market.address) as client:
        pruned = client.reuse(ids, x, "ensemble_pruning", task="classification", train_x=x_train, train_y=y_train)
        augmented = client.reuse(ids, x, "feature_augment", task="classification", train_x=x_train, train_y=y_train)
    assert pruned.predictions.shape == augmented.predictions.shape == (300,)
    assert (pruned.predictions == y).mean() > 0.8
    assert (augmented.predictions == y).mean() > 0.8


def test_reuse_errors_are_clear(market: Market) -> None:
    rng = np.random.default_rng(14)
    x, y = market.classification.sample(0, 40, rng)
    ids = market.class_ids
    with MarketClient(market.address) as client:
        with pytest.raises(MarketError) as error:
            client.reuse([ids[0], "no-such-learnware"], x, "averaging")
        assert error.value.code == grpc.StatusCode.NOT_FOUND and "no-such-learnware" in error.value.message

        with pytest.raises(MarketError) as error:
            client.reuse([ids[0], market.broken_id], x, "job_selector")
        assert error.value.code == grpc.StatusCode.FAILED_PRECONDITION and "not USABLE" in error.value.message

        with pytest.raises(MarketError) as error:
            client.reuse(ids, x[:, :5], "job_selector")
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "shape (n, 8)" in error.value.message

        with pytest.raises(MarketError) as error:
            client.reuse(ids, x, "ensemble_pruning", task="classification", train_x=x, train_y=y + 5)
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "only 3 classes" in error.value.message

        with pytest.raises(MarketError) as error:
            client.reuse(ids, x, "feature_augment", task="classification", train_x=x, train_y=y[:10])
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "y must have shape (40,)" in error.value.message

        with pytest.raises(MarketError) as error:
            client.reuse([ids[0], ids[0]], x, "averaging")
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "duplicates" in error.value.message

        with pytest.raises(ValueError, match="needs task"):
            client.reuse(ids, x, "feature_augment", train_x=x, train_y=y)


@pytest.mark.slow  # local sandboxes for every learnware; examples/table_workflow.py's test does this too
def test_loaded_learnwares_reuse_locally_as_on_the_market(market: Market) -> None:
    rng = np.random.default_rng(15)
    x, y = market.classification.sample_mixture([0, 1], 200, rng)
    ids = market.class_ids
    with MarketClient(market.address) as client:
        learnwares = [client.load_learnware(i) for i in ids]
        try:
            np.testing.assert_allclose(learnwares[2].predict(x), client.predict(ids[2], x))
            assert learnwares[0].semantic_spec is not None and learnwares[0].semantic_spec["Name"]["Values"] == "demo-table-0"
            np.testing.assert_allclose(JobSelectorReuser(learnwares).predict(x), client.reuse(ids, x, "job_selector").predictions)
            np.testing.assert_allclose(AveragingReuser(learnwares, "vote_by_prob").predict(x), client.reuse_averaging(ids, x, "vote_by_prob"))
            pruning = EnsemblePruningReuser(learnwares, "classification")
            pruning.fit(x[:100], y[:100])
            market_pruned = client.reuse(ids, x, "ensemble_pruning", task="classification", train_x=x[:100], train_y=y[:100])
            np.testing.assert_array_equal(pruning.predict(x), market_pruned.predictions)
        finally:
            for learnware in learnwares:
                learnware.close()
        assert not any(lw.runner.alive for lw in learnwares)


def test_cli_reuse_with_labelled_data(market: Market, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(16)
    x, y = market.classification.sample_mixture([2, 3], 120, rng)
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "train_x.csv", x[:60], delimiter=",")
    np.savetxt(tmp_path / "train_y.csv", y[:60], delimiter=",")
    args = ["--market", market.address, "reuse", "--method", "feature_augment", "--task", "classification", "--ids", *market.class_ids]
    args += ["--data", str(tmp_path / "x.npy"), "--train-x", str(tmp_path / "train_x.csv"), "--train-y", str(tmp_path / "train_y.csv"), "--block-rows", "50", "-o", str(tmp_path / "out.csv")]
    assert lwm_main(args) == 0
    captured = capsys.readouterr()
    assert "wrote 120 predictions" in captured.out
    assert "120/120" in captured.err and "note: feature augmentation" in captured.err
    predictions = np.loadtxt(tmp_path / "out.csv", delimiter=",")
    assert (predictions == y).mean() > 0.7

    assert lwm_main(["--market", market.address, "reuse", "--method", "ensemble_pruning", "--ids", *market.class_ids, "--data", str(tmp_path / "x.npy")]) == 4
    assert "needs task" in capsys.readouterr().err
