"""The reference's hetero market workflow through lwm.client.compat on a live Hetero market.

The background trainer is held off (LWM_HETERO_MIN_LEARNWARES above the market's size),
so every engine here comes from the compat organizer: auto_update after the uploads, or
`learnware_organizer.train`. Searches that cannot go hetero return results or nothing
with a message, never an error; HeteroMapAlignLearnware reuses a searched learnware.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from lwm.client.compat import BaseUserInfo, HeteroMap, HeteroMapAlignLearnware, instantiate_learnware_market
from lwm.client.errors import FailedPreconditionError
from lwm.spec import HeteroMapTableSpecification, generate_rkme_table_spec
from lwm.testing.hetero_world import HeteroTableWorld

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TASKS = 3
STEPS = 60  # a small engine: what is tested is who trains it and when, not how well it ranks


def test_hetero_organizer_workflow(market_process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LWM_HETERO_MIN_LEARNWARES", "1000")  # no background training: engines come from compat
    monkeypatch.setenv("LWM_HETERO_RETRAIN_AFTER", "1000")
    address = market_process.start(extra_args=("--market-kind", "hetero"))
    world = HeteroTableWorld.make("diabetes", tasks=TASKS, seed=0)
    market = instantiate_learnware_market(
        market_id="default", name="hetero", organizer_kwargs={"auto_update": True, "auto_update_limit": TASKS, "steps": STEPS}, address=address
    )
    with market:
        organizer = market.learnware_organizer
        assert organizer is not None
        with pytest.raises(FailedPreconditionError, match="not trained yet"):
            organizer.market_mapping  # noqa: B018

        ids = []
        for task in range(TASKS):
            zip_path, semantic = world.write_learnware(task, tmp_path)
            learnware_id, status = market.add_learnware(zip_path, semantic)
            assert status == 1
            ids.append(learnware_id)
        # auto_update trained on the last upload, before add_learnware returned.
        engine = market.client.get_hetero_engine()
        assert engine.engine_id and engine.trained_on == TASKS

        user = world.user_table(0)
        user_spec = generate_rkme_table_spec(user.x)
        semantic = world.user_semantic_spec(user)
        results = market.search_learnware(BaseUserInfo(semantic_spec=semantic, stat_info={"RKMETableSpecification": user_spec}))
        assert results.search_path == "hetero", results.messages
        assert results.get_single_results()

        mapped = organizer.generate_hetero_map_spec(BaseUserInfo(semantic_spec=semantic, stat_info={"RKMETableSpecification": user_spec}))
        assert isinstance(mapped, HeteroMapTableSpecification)
        assert mapped.engine == engine.engine_id and mapped.get_z().shape == (user_spec.get_z().shape[0], 16)

        # Requests hetero search cannot serve are answered, with the reason in the messages.
        segmentation = copy.deepcopy(semantic)
        segmentation["Task"] = {"Values": ["Segmentation"], "Type": "Class"}
        no_task = copy.deepcopy(semantic)
        no_task.pop("Task")
        wrong_dimension = copy.deepcopy(semantic)
        wrong_dimension["Input"]["Dimension"] -= 1
        for request, reason in ((segmentation, "['Segmentation']"), (no_task, "Task is []"), (wrong_dimension, "the Input declares")):
            answer = market.search_learnware(BaseUserInfo(semantic_spec=request, stat_info={"RKMETableSpecification": user_spec}))
            assert answer.search_path != "hetero"
            assert any(reason in message for message in answer.messages), answer.messages
        segmented = market.search_learnware(BaseUserInfo(semantic_spec=segmentation, stat_info={"RKMETableSpecification": user_spec}))
        assert segmented.get_single_results() == []  # no learnware has that task

        # A searched learnware aligned to the user's columns.
        searched = results.get_single_results()[0].learnware
        aligned = HeteroMapAlignLearnware(searched, mode="regression")
        aligned.align(user_spec, user.x[:40], user.y[:40])
        predictions = aligned.predict(user.x)
        assert predictions.reshape(len(user.x), -1).shape[0] == len(user.x) and np.isfinite(predictions).all()

        # train() on two learnwares: the engine that serves when it returns, saved where asked.
        hetero_map = organizer.train(market.get_learnware_by_ids(ids[:2]), save_dir=tmp_path / "engine", steps=STEPS)
        assert isinstance(hetero_map, HeteroMap)
        served = market.client.get_hetero_engine()
        assert served.engine_id == hetero_map.engine_id != engine.engine_id and served.trained_on == 2
        assert HeteroMap.load(tmp_path / "engine" / "hetero_engine.pt").engine_id == served.engine_id

        with pytest.raises(FailedPreconditionError, match="do not qualify"):
            organizer.train(["no-such-learnware"])
        with pytest.raises(TypeError, match="num_epoch"):
            organizer.reset(auto_update=True, auto_update_limit=2, num_epoch=3)
        organizer.reset(auto_update=False)
        assert organizer.auto_update is False
