"""The whole market over real loopback gRPC: upload, search, reuse, errors, restart."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import grpc
import numpy as np
import pytest
from scipy.special import softmax

from lwm.client import MarketClient, MarketError
from lwm.spec import RKMETableSpecification
from lwm.testing.synthetic import TableWorld

pytestmark = pytest.mark.integration
TASKS = 4


def user_spec(x: np.ndarray) -> RKMETableSpecification:
    spec = RKMETableSpecification()
    spec.generate_stat_spec_from_data(x)
    return spec


def test_market_end_to_end(market_process, tmp_path: Path) -> None:
    address = market_process.start()
    world = TableWorld.make(tasks=TASKS, seed=3)
    ids: dict[int, str] = {}
    with MarketClient(address) as client:
        for task in range(TASKS):  # uploaded at once, checked in parallel
            zip_path, semantic = world.write_learnware(task, tmp_path)
            ids[task] = client.add_learnware(zip_path, semantic, wait=False).id
        for task in range(TASKS):
            learnware = client.wait_until_checked(ids[task], timeout_s=300)
            assert learnware.status == "USABLE", learnware.check_report
        assert {lw.id for lw in client.list_learnwares()} == set(ids.values())

        # Semantic search: scenario tag of task 1 only, and fuzzy name search.
        scenario = world.semantic_spec(1)["Scenario"]
        results = client.search_learnware({"Scenario": scenario})
        assert [r.learnware.id for r in results.get_single_results()] == [ids[1]]
        assert results.search_path == "semantic"
        fuzzy = client.search_learnware({"Name": {"Values": "demo-tabel-2", "Type": "String"}})
        assert ids[2] in [r.learnware.id for r in fuzzy.get_single_results()]

        # Statistical search: the learnware trained on the user's region ranks first.
        rng = np.random.default_rng(7)
        x_user, y_user = world.sample(2, 300, rng)
        results = client.search_learnware({}, user_spec(x_user))
        singles = results.get_single_results()
        assert results.search_path == "statistical"
        assert singles[0].learnware.id == ids[2]
        assert singles[0].score >= max(s.score for s in singles)

        # A user mixing two regions gets a mixture of exactly those two learnwares.
        x_mix, y_mix = world.sample_mixture([0, 3], 400, rng)
        mixtures = client.search_learnware({}, user_spec(x_mix)).get_multiple_results()
        assert mixtures, "expected a mixture for a two-region user"
        assert {lw.id for lw in mixtures[0].learnwares} == {ids[0], ids[3]}
        assert abs(sum(mixtures[0].weights) - 1.0) < 1e-6

        # Reuse: averaging over the mixture equals the average of each member's own predictions.
        probabilities = client.reuse_averaging([ids[0], ids[3]], x_mix, mode="vote_by_prob")
        assert probabilities.shape == (x_mix.shape[0], world.n_classes)
        members = [softmax(client.predict(ids[t], x_mix), axis=1) for t in (0, 3)]
        np.testing.assert_allclose(probabilities, np.mean(members, axis=0), rtol=1e-6)
        top1_accuracy = (client.predict(ids[2], x_user).argmax(axis=1) == y_user).mean()
        others = [(client.predict(ids[t], x_user).argmax(axis=1) == y_user).mean() for t in (0, 1, 3)]
        assert top1_accuracy > 0.85 and top1_accuracy > max(others)

        # Download gives back the uploaded bytes.
        downloaded = client.download(ids[0], tmp_path / "back.zip")
        assert downloaded.read_bytes() == (tmp_path / "learnware-0.zip").read_bytes()

        # Delete: gone from get, list and search at once.
        client.delete_learnware(ids[3])
        with pytest.raises(MarketError) as error:
            client.get_learnware(ids[3])
        assert error.value.code == grpc.StatusCode.NOT_FOUND
        mixtures = client.search_learnware({}, user_spec(x_mix))
        assert ids[3] not in {r.learnware.id for r in mixtures.get_single_results()}

    # Restart on the same data directory: everything is still there and searchable.
    assert market_process.stop() == 0
    address = market_process.start()
    with MarketClient(address) as client:
        assert {lw.id for lw in client.list_learnwares()} == {ids[0], ids[1], ids[2]}
        assert all(lw.status == "USABLE" for lw in client.list_learnwares())
        results = client.search_learnware({}, user_spec(x_user))
        assert results.get_single_results()[0].learnware.id == ids[2]
        assert client.reuse_averaging([ids[2]], x_user, mode="vote_by_prob").shape == (x_user.shape[0], world.n_classes)


def _zip_without(source: Path, missing: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(buffer, "w") as dst:
        for item in src.infolist():
            if not item.filename.endswith(missing):
                dst.writestr(item, src.read(item))
    return buffer.getvalue()


def test_bad_input_gets_clear_errors(market_process, tmp_path: Path) -> None:
    address = market_process.start()
    world = TableWorld.make(tasks=1, seed=5)
    zip_path, semantic = world.write_learnware(0, tmp_path)
    with MarketClient(address) as client:
        not_zip = tmp_path / "not-a-zip.zip"
        not_zip.write_bytes(b"this is not a zip file at all")
        with pytest.raises(MarketError) as error:
            client.add_learnware(not_zip, semantic)
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "zip" in error.value.message.lower()

        no_yaml = tmp_path / "no-yaml.zip"
        no_yaml.write_bytes(_zip_without(zip_path, "learnware.yaml"))
        with pytest.raises(MarketError) as error:
            client.add_learnware(no_yaml, semantic)
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "learnware.yaml" in error.value.message

        bad_semantic = dict(semantic, Data={"Values": ["Spreadsheet"], "Type": "Class"})
        with pytest.raises(MarketError) as error:
            client.add_learnware(zip_path, bad_semantic)
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "Data" in error.value.message

        with pytest.raises(ValueError, match="unknown keys"):
            client.add_learnware(zip_path, dict(semantic, Colour={"Values": ["red"], "Type": "Tag"}))

        with pytest.raises(MarketError) as error:
            client.get_learnware("no-such-learnware")
        assert error.value.code == grpc.StatusCode.NOT_FOUND
        assert "no-such-learnware" in error.value.message

        wrong_dim = RKMETableSpecification()
        wrong_dim.generate_stat_spec_from_data(np.random.default_rng(0).normal(size=(200, world.dim + 3)))
        results = client.search_learnware({}, wrong_dim)
        assert not results.get_single_results() and results.messages

        assert list(client.list_learnwares()) == [], "rejected uploads must leave nothing behind"
