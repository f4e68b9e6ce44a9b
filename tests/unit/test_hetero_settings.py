"""The searcher's hetero engine settings and the training sample of a large market."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lwm.services.searcher.hetero import HeteroSettings, training_sample


def sources(count: int) -> list:
    return [SimpleNamespace(info=SimpleNamespace(id=f"lw-{i}")) for i in range(count)]


def test_training_sample_keeps_its_members_as_the_market_grows() -> None:
    market = sources(50)
    assert training_sample(market[:5], 10) == market[:5]
    early = {source.info.id for source in training_sample(market[:30], 10)}
    late = {source.info.id for source in training_sample(market, 10)}
    assert len(early) == len(late) == 10
    # A learnware leaves the sample only for a newcomer, never for another old one.
    assert {i for i in late if int(i.split("-")[1]) < 30} <= early
    assert {source.info.id for source in training_sample(list(reversed(market)), 10)} == late  # order does not matter


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LWM_HETERO_MAX_TRAINING_LEARNWARES", "200")
    assert HeteroSettings.from_env().max_training_learnwares == 200
    monkeypatch.setenv("LWM_HETERO_MAX_TRAINING_LEARNWARES", "2")
    with pytest.raises(ValueError, match="below LWM_HETERO_MIN_LEARNWARES"):
        HeteroSettings.from_env()


def test_trainer_lease_and_checkpoint_poll_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LWM_HETERO_TRAINER_LEASE_S", "12")
    monkeypatch.setenv("LWM_HETERO_CHECKPOINT_POLL_S", "0.5")
    settings = HeteroSettings.from_env()
    assert (settings.trainer_lease_s, settings.checkpoint_poll_s) == (12.0, 0.5)
    monkeypatch.setenv("LWM_HETERO_TRAINER_LEASE_S", "0")
    with pytest.raises(ValueError, match="must be positive"):
        HeteroSettings.from_env()
