"""The reference's hetero market organizer (learnware.market.heterogeneous.organizer) over a remote Hetero market.

The market's searcher owns the hetero engine and trains it in the background as
learnwares arrive. `HeteroOrganizer` is `market.learnware_organizer` of a market
instantiated with name="hetero": `train` trains the engine on the market now and returns
once it serves, `generate_hetero_map_spec` maps a user's table spec with the serving
engine (locally), and `auto_update` trains after every `auto_update_limit` uploads of
learnwares the engine can use, as the reference's organizer does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lwm.client.market import HeteroEngineCheckpoint, Learnware, MarketClient
from lwm.learnware.semantic import hetero_search_problem
from lwm.spec import RKMETableSpecification
from lwm.spec.hetero import HeteroMap, HeteroMapTableSpecification

if TYPE_CHECKING:
    from lwm.client.compat.market import BaseUserInfo, MarketLearnware

__all__ = ["HeteroMap", "HeteroMapTableSpecification", "HeteroOrganizer"]

log = logging.getLogger(__name__)
# The reference's training_args are its TransTab trainer's; the market's engine takes these.
TRAINING_ARGS = ("steps",)
ENGINE_FILE = "hetero_engine.pt"


def _check_training_args(training_args: dict[str, Any]) -> None:
    unknown = sorted(set(training_args) - set(TRAINING_ARGS))
    if unknown:
        raise TypeError(
            f"training_args {unknown} configure the reference's TransTab trainer; the market's hetero engine takes {list(TRAINING_ARGS)} "
            "(its other settings are LWM_HETERO_* variables where the searcher runs, docs/search.md)"
        )
    steps = training_args.get("steps", 0)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a positive int (0 = the market's default), got {steps!r}")


def check_organizer_kwargs(organizer_kwargs: dict[str, Any]) -> None:
    """TypeError/ValueError for organizer_kwargs a Hetero market cannot honour (before connecting to it)."""
    options = dict(organizer_kwargs)
    auto_update, limit = options.pop("auto_update", False), options.pop("auto_update_limit", 100)
    if not isinstance(auto_update, bool):
        raise TypeError(f"auto_update must be True or False, got {auto_update!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"auto_update_limit must be a positive int, got {limit!r}")
    _check_training_args(options)


def trains_engine(learnware: Learnware) -> bool:
    """Whether the hetero engine uses this learnware (USABLE, a table task with every input feature described),
    the reference organizer's _get_hetero_learnware_ids rule."""
    if learnware.status != "USABLE":
        return False
    declared = (learnware.semantic_spec.get("Input") or {}).get("Dimension")
    return isinstance(declared, int) and hetero_search_problem(learnware.semantic_spec, declared) is None


class HeteroOrganizer:
    """`learnware_organizer` of a Hetero market: train, generate_hetero_map_spec, reset (reference API)."""

    def __init__(self, client: MarketClient, market_id: str, auto_update: bool = False, auto_update_limit: int = 100, **training_args: Any) -> None:
        self.client = client
        self.market_id = market_id
        self.reset(market_id, auto_update=auto_update, auto_update_limit=auto_update_limit, **training_args)

    def reset(self, market_id: str | None = None, rebuild: bool = False, auto_update: bool = False, auto_update_limit: int = 100, **training_args: Any) -> None:
        """Set auto_update (train after every `auto_update_limit` uploads the engine uses) and the training arguments.

        market_id: this market's (another market is another instantiate_learnware_market);
        rebuild=True is instantiate_learnware_market(..., rebuild=True) here.
        """
        if market_id is not None and market_id != self.market_id:
            raise ValueError(f"this organizer belongs to market {self.market_id!r}; open market {market_id!r} with instantiate_learnware_market(market_id=...)")
        if rebuild:
            raise TypeError("reset(rebuild=True): empty the market with instantiate_learnware_market(market_id, name='hetero', rebuild=True)")
        check_organizer_kwargs({"auto_update": auto_update, "auto_update_limit": auto_update_limit, **training_args})
        self.auto_update = auto_update
        self.auto_update_limit = auto_update_limit
        self.count_down = auto_update_limit
        self.training_args = dict(training_args)

    def learnware_added(self, learnware: Learnware) -> None:
        """Called by the market after each upload: with auto_update, train once `auto_update_limit` usable ones arrived."""
        if not self.auto_update or not trains_engine(learnware):
            return
        self.count_down -= 1
        if self.count_down == 0:
            log.info("auto_update: %d learnwares the hetero engine uses were added; training it", self.auto_update_limit)
            self.train()
            self.count_down = self.auto_update_limit

    def train(self, learnware_list: Iterable[MarketLearnware | str] | None = None, save_dir: str | os.PathLike[str] | None = None, **training_args: Any) -> HeteroMap:
        """Train the market's hetero engine now (on `learnware_list`, default every learnware it can use); it serves when this returns.

        The trained engine is returned as a HeteroMap and, with save_dir, saved there as hetero_engine.pt.
        """
        args = {**self.training_args, **training_args}
        _check_training_args(args)
        ids = [] if learnware_list is None else [item if isinstance(item, str) else item.id for item in learnware_list]
        trained = self.client.train_hetero_engine(ids, steps=args.get("steps", 0))
        for message in trained.messages:
            log.info("%s", message)
        return self._hetero_map(trained, save_dir)

    def generate_hetero_map_spec(self, user_info: BaseUserInfo) -> HeteroMapTableSpecification:
        """The user's RKMETableSpecification mapped by the market's serving engine, with the descriptions of the user's Input."""
        user_spec = user_info.get_stat_info("RKMETableSpecification")
        if not isinstance(user_spec, RKMETableSpecification):
            raise ValueError("generate_hetero_map_spec needs user_info.stat_info['RKMETableSpecification']")
        features = (user_info.get_semantic_spec().get("Input") or {}).get("Description")
        if not isinstance(features, dict):
            raise ValueError("generate_hetero_map_spec needs the user's semantic spec Input with a Description of the features")
        return self.market_mapping.hetero_mapping(user_spec, features)

    @property
    def market_mapping(self) -> HeteroMap:
        """The engine serving the market's hetero searches (FailedPreconditionError while none is trained)."""
        return self._hetero_map(self.client.get_hetero_engine(), None)

    @staticmethod
    def _hetero_map(engine: HeteroEngineCheckpoint, save_dir: str | os.PathLike[str] | None) -> HeteroMap:
        if save_dir is not None:
            Path(save_dir).mkdir(parents=True, exist_ok=True)
            (Path(save_dir) / ENGINE_FILE).write_bytes(engine.checkpoint)
        return HeteroMap.from_bytes(engine.checkpoint, "cpu")
