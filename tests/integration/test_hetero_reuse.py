"""Hetero alignment reuse through a real market (`lwm serve --all`) and locally, learnwares in sandboxes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import MarketProcess

from lwm.client import MarketClient, MarketError
from lwm.client.reuse import AveragingReuser, HeteroMapAlignLearnware
from lwm.testing.hetero_world import HeteroTableWorld

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Market:
    address: str
    world: HeteroTableWorld
    ids: list[str]


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    folder = tmp_path_factory.mktemp("hetero-market")
    process = MarketProcess(folder / "data", folder / "market.log")
    address = process.start()
    world = HeteroTableWorld.make("breast_cancer", tasks=2, user_fraction=0.6, seed=0)
    try:
        with MarketClient(address) as client:
            ids = [client.add_learnware(*world.write_learnware(task, folder), wait=False).id for task in range(world.tasks)]
            for learnware_id in ids:
                learnware = client.wait_until_checked(learnware_id)
                assert learnware.status == "USABLE", learnware.check_report
        yield Market(address, world, ids)
    finally:
        process.stop()


def error_rate(predictions: np.ndarray, y: np.ndarray) -> float:
    labels = predictions.argmax(axis=1) if predictions.ndim == 2 else predictions
    return float(np.mean(labels != y))


def own_columns_error(market: Market, client: MarketClient, task: int) -> float:
    """The learnware's error on the user's rows given in the learnware's own columns."""
    rows = market.world.user_table(task, columns=market.world.learnware_columns[task])
    return error_rate(client.predict(market.ids[task], rows.x), rows.y)


def test_aligned_learnware_predicts_on_the_users_columns(market: Market) -> None:
    user = market.world.user_table(0)
    assert user.columns != market.world.learnware_columns[0]
    semantic = market.world.user_semantic_spec(user)
    with MarketClient(market.address) as client:
        reference = own_columns_error(market, client, 0)
        aligned = client.reuse([market.ids[0]], user.x, "hetero_align", task="classification", user_semantic_spec=semantic)
        assert aligned.predictions.shape == (len(user.y), 2)
        assert error_rate(aligned.predictions, user.y) <= reference + 0.05
        assert "hetero alignment" in aligned.messages[0] and "columns matched" in aligned.messages[0]

        labelled = client.reuse([market.ids[0]], user.x[60:], "hetero_align", task="classification", train_x=user.x[:60], train_y=user.y[:60], user_semantic_spec=semantic)
        assert labelled.predictions.shape == (len(user.y) - 60,)
        assert error_rate(labelled.predictions, user.y[60:]) < 0.1
        assert "by labelled loss" in labelled.messages[0] and "then feature augmentation" in labelled.messages[0]

        # Without descriptions the columns match by their distributions alone.
        plain = client.reuse([market.ids[0]], user.x, "hetero_align", task="classification")
        assert error_rate(plain.predictions, user.y) < 0.25


def test_cli_reuse_hetero_align_equals_the_sdk(market: Market, tmp_path: Path) -> None:
    user = market.world.user_table(0)
    semantic = market.world.user_semantic_spec(user)
    (tmp_path / "semantic.json").write_text(json.dumps(semantic))
    np.save(tmp_path / "x.npy", user.x)
    command = [sys.executable, "-m", "lwm.client.cli", "--market", market.address, "reuse", "--method", "hetero_align", "--task", "classification"]
    done = subprocess.run([*command, "--ids", market.ids[0], "--data", str(tmp_path / "x.npy"), "--semantic", str(tmp_path / "semantic.json"), "--quiet", "-o", str(tmp_path / "out.csv")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with MarketClient(market.address) as client:
        expected = client.reuse([market.ids[0]], user.x, "hetero_align", task="classification", user_semantic_spec=semantic).predictions
    np.testing.assert_allclose(np.loadtxt(tmp_path / "out.csv", delimiter=",", ndmin=2), expected, rtol=1e-6)


def test_aligned_learnwares_locally_as_on_the_market(market: Market) -> None:
    user = market.world.user_table(1)
    semantic = market.world.user_semantic_spec(user)
    with MarketClient(market.address) as client:
        on_market = client.reuse([market.ids[1]], user.x, "hetero_align", task="classification", user_semantic_spec=semantic).predictions
        learnwares = [client.load_learnware(i) for i in market.ids]
    try:
        aligned = [HeteroMapAlignLearnware(learnware, "classification", semantic) for learnware in learnwares]
        with pytest.raises(ValueError, match="align learnware"):
            aligned[0].predict(user.x)
        for learnware in aligned:
            learnware.align(user.x)
        np.testing.assert_allclose(aligned[1].predict(user.x), on_market)
        averaged = AveragingReuser(aligned, "vote_by_prob").predict(user.x)
        assert averaged.shape == (len(user.y), 2) and error_rate(averaged, user.y) < 0.2
    finally:
        for learnware in learnwares:
            learnware.close()


def test_hetero_align_errors_are_clear(market: Market) -> None:
    user = market.world.user_table(0)
    with MarketClient(market.address) as client:
        with pytest.raises(MarketError) as error:
            client.reuse([market.ids[0], "no-such-learnware"], user.x, "hetero_align", task="classification")
        assert error.value.code == grpc.StatusCode.NOT_FOUND and "no-such-learnware" in error.value.message

        with pytest.raises(MarketError) as error:
            client.reuse([market.ids[0]], user.x, "hetero_align", task="classification", train_x=user.x[:20, :3], train_y=user.y[:20])
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and f"shape (n, {user.x.shape[1]})" in error.value.message

        with pytest.raises(MarketError) as error:
            client.reuse([market.ids[0]], user.x, "hetero_align", task="classification", train_x=user.x[:20], train_y=user.y[:5])
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "y must have shape (20,)" in error.value.message

        with pytest.raises(MarketError) as error:
            client.reuse([market.ids[0]], user.x[:, :2], "hetero_align", task="classification", user_semantic_spec=market.world.user_semantic_spec(user))
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and f"describes {user.x.shape[1]} input columns but x has 2" in error.value.message

        with pytest.raises(ValueError, match="needs task"):
            client.reuse([market.ids[0]], user.x, "hetero_align")
