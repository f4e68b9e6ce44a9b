"""Named markets on one live market process (`lwm serve --all` with tokens): each market's
uploads, list, counts and search are its own; clearing (the reference's rebuild) empties only
one market and needs its owner or an admin; the CLI's --market-id and the compat rebuild."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest

from lwm.client import MarketClient, MarketError
from lwm.client.compat import instantiate_learnware_market
from lwm.rpc.auth import TokenStore
from lwm.spec import RKMETableSpecification
from lwm.testing.synthetic import TableWorld

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-all (make test stays under 12 minutes on 2 cores)


def lwm(*args: str, token: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != "LWM_MARKET_ID"}
    return subprocess.run([sys.executable, "-m", "lwm.client.cli", *args], capture_output=True, text=True, timeout=300, env=dict(env, LWM_TOKEN=token))


def test_named_markets(market_process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    token = {name: store.create(name, role)[0] for name, role in (("alice", "user"), ("bob", "user"), ("root", "admin"))}
    monkeypatch.setenv("LWM_TOKENS_FILE", str(store.path))
    address = market_process.start()
    world = TableWorld.make(tasks=3, seed=44)
    zips = [world.write_learnware(task, tmp_path) for task in range(3)]

    def client(name: str, market_id: str) -> MarketClient:
        return MarketClient(address, token=token[name], tls_ca="", market_id=market_id)

    alice_a, alice_b, bob_b, root_a, root_b, root_default = (
        client("alice", "alpha"), client("alice", "beta"), client("bob", "beta"), client("root", "alpha"), client("root", "beta"), client("root", "default")
    )
    in_a = [alice_a.add_learnware(*zips[task], wait=True) for task in (0, 1)]
    in_b = [bob_b.add_learnware(*zips[task], wait=True) for task in (0, 2)] + [alice_b.add_learnware(*zips[1], wait=True)]
    assert {lw.status for lw in in_a + in_b} == {"USABLE"}
    assert {lw.market_id for lw in in_a} == {"alpha"} and {lw.market_id for lw in in_b} == {"beta"}

    # Lists and counts per market (an admin lists everyone's learnwares of the market).
    assert [lw.id for lw in root_a.list_learnwares()] == [lw.id for lw in in_a]
    assert [lw.id for lw in root_b.list_learnwares()] == [lw.id for lw in in_b]
    assert list(root_default.list_learnwares()) == []
    assert root_a.market_info()["learnware_counts"]["USABLE"] == 2 and root_a.market_info()["market_id"] == "alpha"
    assert root_b.market_info()["learnware_counts"]["USABLE"] == 3
    assert root_default.market_info()["learnware_counts"]["USABLE"] == 0

    # Searches: semantic and statistical, each within its market; ids are global.
    assert {r.learnware.id for r in root_a.search_learnware({}).single_results} == {lw.id for lw in in_a}
    assert {r.learnware.id for r in root_b.search_learnware({}).single_results} == {lw.id for lw in in_b}
    x, _ = world.sample(2, 300, np.random.default_rng(7))
    user = RKMETableSpecification()
    user.generate_stat_spec_from_data(x)
    found_b = root_b.search_learnware({}, user)
    assert found_b.search_path == "statistical" and found_b.single_results[0].learnware.id == in_b[1].id  # bob's model of task 2
    found_a = root_a.search_learnware({}, user)  # alpha has no model of task 2: never beta's
    found_ids = {r.learnware.id for r in found_a.single_results} | {lw.id for m in found_a.multiple_results for lw in m.learnwares}
    assert found_ids and found_ids <= {lw.id for lw in in_a}
    assert root_a.get_learnware(in_b[0].id).market_id == "beta"

    # Clearing: refused for a user who does not own every learnware of the market, nothing deleted.
    with pytest.raises(MarketError) as denied:
        alice_b.clear_market()
    assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED and "bob" in denied.value.message
    assert len(list(root_b.list_learnwares())) == 3
    with pytest.raises(MarketError) as bad:
        client("root", "no spaces!").list_learnwares().__next__()
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT and "market_id" in bad.value.message

    # The compat rebuild by alice, the owner of every learnware of alpha, empties alpha only.
    market = instantiate_learnware_market(market_id="alpha", name="easy", rebuild=True, address=address, token=token["alice"], tls_ca="")
    try:
        assert len(market) == 0 and market.get_learnware_ids() == []
    finally:
        market.close()
    assert list(root_a.list_learnwares()) == []
    assert [lw.id for lw in root_b.list_learnwares()] == [lw.id for lw in in_b]
    assert root_b.search_learnware({}, user).single_results[0].learnware.id == in_b[1].id

    # The CLI: --market-id before or after the command, or LWM_MARKET_ID; an admin clears beta.
    listed = lwm("--market", address, "--market-id", "beta", "ls", "--json", token=token["root"])
    assert listed.returncode == 0, listed.stderr
    assert [lw["id"] for lw in json.loads(listed.stdout)] == [lw.id for lw in in_b]
    info = lwm("info", "--market", address, "--market-id", "alpha", token=token["root"])
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["market_id"] == "alpha" and json.loads(info.stdout)["learnware_counts"]["USABLE"] == 0
    refused = lwm("--market", address, "clear-market", "--market-id", "beta", token=token["alice"])
    assert refused.returncode != 0 and "PERMISSION_DENIED" in refused.stderr
    env_info = subprocess.run(
        [sys.executable, "-m", "lwm.client.cli", "--market", address, "info"], capture_output=True, text=True, timeout=300, env=dict(os.environ, LWM_TOKEN=token["root"], LWM_MARKET_ID="beta")
    )
    assert env_info.returncode == 0 and json.loads(env_info.stdout)["learnware_counts"]["USABLE"] == 3, env_info.stderr
    cleared = lwm("--market", address, "--json", "clear-market", "--market-id", "beta", token=token["root"])
    assert cleared.returncode == 0, cleared.stderr
    assert json.loads(cleared.stdout) == {"market_id": "beta", "deleted_ids": [lw.id for lw in in_b]}
    assert list(root_b.list_learnwares()) == []
    for each in (alice_a, alice_b, bob_b, root_a, root_b, root_default):
        each.close()
