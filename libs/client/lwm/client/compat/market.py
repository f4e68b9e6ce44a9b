"""The reference's `learnware.market` over a remote market.

`instantiate_learnware_market` connects to a running market (the `address`
argument, else env LWM_MARKET, else 127.0.0.1:50051) instead of opening a local
one. Learnwares in search results are downloaded and started in a local sandbox
(lwm.client.reuse) the first time a reuser or `predict` needs them; close the
market (or use `with`) to stop those sandboxes, which otherwise stop at exit.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from lwm.client.compat.hetero import HeteroOrganizer, check_organizer_kwargs
from lwm.client.errors import NotFoundError
from lwm.client.market import DEFAULT_MARKET, Learnware, MarketClient
from lwm.client.reuse import AveragingReuser, EnsemblePruningReuser, FeatureAugmentReuser, HeteroMapAlignLearnware, JobSelectorReuser, LocalLearnware
from lwm.spec import (
    IMAGE_SPEC_TYPE,
    LEGACY_TABLE_SPEC_TYPE,
    TABLE_SPEC_TYPE,
    TEXT_SPEC_TYPE,
    RKMEImageSpecification,
    RKMETableSpecification,
    RKMETextSpecification,
    generate_semantic_spec,
    generate_stat_spec,
)

__all__ = [
    "AveragingReuser",
    "BaseUserInfo",
    "EnsemblePruningReuser",
    "FeatureAugmentReuser",
    "HeteroMapAlignLearnware",
    "JobSelectorReuser",
    "LearnwareMarket",
    "MarketLearnware",
    "MultipleSearchItem",
    "RKMEImageSpecification",
    "RKMETableSpecification",
    "RKMETextSpecification",
    "SearchResults",
    "SingleSearchItem",
    "generate_semantic_spec",
    "generate_stat_spec",
    "instantiate_learnware_market",
]

# The reference's BaseChecker status values.
INVALID_LEARNWARE, NONUSABLE_LEARNWARE, USABLE_LEARNWARE = -1, 0, 1
CHECK_STATUS_CODES = {"INVALID": INVALID_LEARNWARE, "NONUSABLE": NONUSABLE_LEARNWARE, "USABLE": USABLE_LEARNWARE}
STATUS_NAMES = {code: name for name, code in CHECK_STATUS_CODES.items()}
# The learnwares the reference's market holds: it never keeps an INVALID one.
MEMBER_STATUSES = ("USABLE", "NONUSABLE")
# The stat_info keys a search uses, in the reference's order of preference.
SEARCH_SPEC_TYPES = (TABLE_SPEC_TYPE, LEGACY_TABLE_SPEC_TYPE, IMAGE_SPEC_TYPE, TEXT_SPEC_TYPE)
MARKET_NAMES = ("easy", "hetero")


class BaseUserInfo:
    """A user's requirement: a semantic spec and statistical specs by type name (reference API)."""

    def __init__(self, id: str | None = None, semantic_spec: dict[str, Any] | None = None, stat_info: dict[str, Any] | None = None) -> None:
        self.id = id
        self.semantic_spec = {} if semantic_spec is None else semantic_spec
        self.stat_info = {} if stat_info is None else stat_info

    def get_semantic_spec(self) -> dict[str, Any]:
        return self.semantic_spec

    def get_stat_info(self, name: str) -> Any:
        return self.stat_info.get(name)

    def update_semantic_spec(self, semantic_spec: dict[str, Any]) -> None:
        self.semantic_spec = semantic_spec

    def update_stat_info(self, name: str, item: Any) -> None:
        self.stat_info[name] = item


class LearnwareSpecification:
    """What the reference's `Learnware.get_specification()` returns: the semantic and statistical specs."""

    def __init__(self, learnware: MarketLearnware) -> None:
        self._learnware = learnware

    def get_semantic_spec(self) -> dict[str, Any]:
        return self._learnware.info.semantic_spec

    def get_stat_spec_by_name(self, name: str) -> Any:
        """The learnware's table spec for RKMETableSpecification (or its old name); None otherwise."""
        table_types = (TABLE_SPEC_TYPE, LEGACY_TABLE_SPEC_TYPE)
        has_table_spec = any(spec_type in table_types for spec_type in self._learnware.info.stat_spec_types)
        return self._learnware.stat_spec if name in table_types and has_table_spec else None


class MarketLearnware:
    """A market's learnware with the reference's shape: `id`, `get_specification()`, `predict(X)`.

    The zip is downloaded and its model started in a local sandbox on first use
    (`predict`, `stat_spec`); `close` stops it.
    """

    def __init__(self, info: Learnware, client: MarketClient) -> None:
        self.info = info
        self._client = client
        self._local: LocalLearnware | None = None
        self._stop_local: weakref.finalize[Any, Any] | None = None  # closes the sandbox once: on close(), collection or exit
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.info.id

    def get_specification(self) -> LearnwareSpecification:
        return LearnwareSpecification(self)

    @property
    def semantic_spec(self) -> dict[str, Any]:
        return self.info.semantic_spec

    def local(self) -> LocalLearnware:
        """The learnware running in a local sandbox (downloaded and started on the first call)."""
        with self._lock:
            if self._local is None:
                self._local = self._client.load_learnware(self.id)
                self._stop_local = weakref.finalize(self, self._local.close)
            return self._local

    @property
    def stat_spec(self) -> RKMETableSpecification:
        return self.local().stat_spec

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.local().predict(X)

    def close(self) -> None:
        with self._lock:
            if self._stop_local is not None:
                self._stop_local()
                self._local = self._stop_local = None

    def __repr__(self) -> str:
        return f"MarketLearnware(id={self.id!r}, name={self.info.name!r}, status={self.info.status})"


@dataclass
class SingleSearchItem:
    learnware: MarketLearnware
    score: float


@dataclass
class MultipleSearchItem:
    learnwares: list[MarketLearnware]
    score: float
    weights: list[float]


@dataclass
class SearchResults:
    single_results: list[SingleSearchItem] = field(default_factory=list)
    multiple_results: list[MultipleSearchItem] = field(default_factory=list)
    search_path: str = ""
    messages: list[str] = field(default_factory=list)

    def get_single_results(self) -> list[SingleSearchItem]:
        return self.single_results

    def get_multiple_results(self) -> list[MultipleSearchItem]:
        return self.multiple_results


class LearnwareMarket:
    """The reference's LearnwareMarket API on a remote market; `client` is the full MarketClient."""

    def __init__(self, client: MarketClient, market_id: str = "default", learnware_organizer: HeteroOrganizer | None = None) -> None:
        self.client = client
        self.market_id = market_id
        # A Hetero market's organizer API (train, generate_hetero_map_spec, reset); None in an Easy market.
        self.learnware_organizer = learnware_organizer
        self._learnwares: dict[str, MarketLearnware] = {}

    def _learnware(self, info: Learnware) -> MarketLearnware:
        """One MarketLearnware per id, so a learnware in several results starts one sandbox."""
        learnware = self._learnwares.get(info.id)
        if learnware is not None and learnware.info == info:
            return learnware
        if learnware is not None:  # the learnware changed on the market since it was loaded
            learnware.close()
        learnware = self._learnwares[info.id] = MarketLearnware(info, self.client)
        return learnware

    def add_learnware(self, zip_path: str | os.PathLike[str], semantic_spec: dict[str, Any]) -> tuple[str, int]:
        """Upload and check a learnware: (id, check status), the status as the reference's ints (-1, 0, 1).

        An INVALID learnware is not a member of the market, as in the reference (len(),
        get_learnware_ids() and searches leave it out), but the market keeps it for its
        owner with its check report (`client.get_learnware(id).check_report`, `lwm ls
        --status INVALID`), so its id is returned.
        """
        learnware = self.client.add_learnware(zip_path, semantic_spec, wait=True)
        if self.learnware_organizer is not None:
            self.learnware_organizer.learnware_added(learnware)
        return learnware.id, CHECK_STATUS_CODES[learnware.status]

    def search_learnware(self, user_info: BaseUserInfo, check_status: int | None = None, max_search_num: int = 5, search_method: str = "greedy") -> SearchResults:
        """Search USABLE learnwares by the user's semantic spec and, when given, a statistical spec in `stat_info`.

        search_method: "greedy" or "auto" (the mixture search strategy).
        """
        if check_status not in (None, USABLE_LEARNWARE):
            raise ValueError(f"the market searches only USABLE learnwares (check_status {USABLE_LEARNWARE}), got {check_status}")
        if search_method not in ("greedy", "auto"):
            raise ValueError(f"search_method must be 'greedy' or 'auto', got {search_method!r}")
        stat_spec = next((user_info.stat_info[name] for name in SEARCH_SPEC_TYPES if name in user_info.stat_info), None)
        results = self.client.search_learnware(user_info.get_semantic_spec(), stat_spec, max_search_num=max_search_num, mixture_strategy=search_method)
        return SearchResults(
            single_results=[SingleSearchItem(self._learnware(item.learnware), item.score) for item in results.single_results],
            multiple_results=[MultipleSearchItem([self._learnware(lw) for lw in mixture.learnwares], mixture.score, list(mixture.weights)) for mixture in results.multiple_results],
            search_path=results.search_path,
            messages=list(results.messages),
        )

    def delete_learnware(self, id: str) -> bool:
        """False when the market has no learnware `id` (as the reference)."""
        try:
            self.client.delete_learnware(id)
        except NotFoundError:
            return False
        stale = self._learnwares.pop(id, None)
        if stale is not None:
            stale.close()
        return True

    def get_learnware_ids(self, top: int | None = None, check_status: int | None = None) -> list[str]:
        return [learnware.id for learnware in self._list(top, check_status)]

    def get_learnwares(self, top: int | None = None, check_status: int | None = None) -> list[MarketLearnware]:
        return [self._learnware(info) for info in self._list(top, check_status)]

    def _list(self, top: int | None, check_status: int | None) -> list[Learnware]:
        statuses = MEMBER_STATUSES if check_status is None else (STATUS_NAMES[check_status],)
        learnwares: list[Learnware] = []
        for info in self.client.list_learnwares(statuses=statuses):
            if top is not None and len(learnwares) >= top:
                break
            learnwares.append(info)
        return learnwares

    def get_learnware_by_ids(self, id: str | list[str]) -> MarketLearnware | None | list[MarketLearnware | None]:
        """One learnware (None when missing), or a list for a list of ids."""
        if isinstance(id, list):
            return [self._get(one) for one in id]
        return self._get(id)

    def _get(self, learnware_id: str) -> MarketLearnware | None:
        try:
            return self._learnware(self.client.get_learnware(learnware_id))
        except NotFoundError:
            return None

    def download_learnware(self, learnware_id: str, save_path: str | os.PathLike[str]) -> Path:
        """Save a learnware's zip (the name of the reference's LearnwareClient method)."""
        return self.client.download(learnware_id, save_path)

    def __len__(self) -> int:
        counts = self.client.market_info()["learnware_counts"]
        return sum(counts.get(status, 0) for status in MEMBER_STATUSES)

    def close(self) -> None:
        """Stop the sandboxes of loaded learnwares and close the connection."""
        for learnware in self._learnwares.values():
            learnware.close()
        self._learnwares.clear()
        self.client.close()

    def __enter__(self) -> LearnwareMarket:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def instantiate_learnware_market(
    market_id: str = "default",
    name: str = "easy",
    rebuild: bool = False,
    organizer_kwargs: dict[str, Any] | None = None,
    searcher_kwargs: dict[str, Any] | None = None,
    checker_kwargs: dict[str, Any] | None = None,
    conda_checker: bool = False,
    address: str | None = None,
    **client_options: Any,
) -> LearnwareMarket:
    """Connect to a running market (the reference's function of the same name opens a local one).

    market_id: the named market on the server (created by the first upload to it);
    name: "easy" works with any market, "hetero" needs a market serving hetero
    search. rebuild=True deletes every learnware of that market only, as the reference
    empties its market (allowed for an admin, or a user owning all of them).
    conda_checker: either way the market checks each learnware in an environment
    built from its requirements. The reference's component kwargs configure its local
    organizer, searcher and checkers; the market's are configured where they run, so
    only empty ones are accepted (TypeError otherwise, naming what to use instead),
    except a hetero market's organizer_kwargs auto_update, auto_update_limit and
    training_args (see HeteroOrganizer).
    `client_options` go to MarketClient (timeout_s, token, tls_ca, retry).
    """
    if organizer_kwargs and name != "hetero":
        raise TypeError(
            f"organizer_kwargs {sorted(organizer_kwargs)} configure the reference's local organizer; an Easy market has none to set "
            "(a name='hetero' market takes auto_update, auto_update_limit and steps; its engine's other settings are LWM_HETERO_* variables "
            "where its searcher runs, docs/search.md)"
        )
    check_organizer_kwargs(organizer_kwargs or {})
    for keyword, given in (("searcher_kwargs", searcher_kwargs), ("checker_kwargs", checker_kwargs)):
        if given:
            raise TypeError(f"{keyword} {sorted(given)} configure the reference's local market; the market's services are configured where they run (docs/operators.md)")
    if not isinstance(conda_checker, bool):
        raise TypeError(f"conda_checker must be True or False, got {conda_checker!r}")
    if name not in MARKET_NAMES:
        raise ValueError(f"name {name} is not supported for market; choose from {', '.join(MARKET_NAMES)}")
    client = MarketClient(address or os.environ.get("LWM_MARKET", DEFAULT_MARKET), market_id=market_id, **client_options)
    try:
        kind = client.market_info()["kind"]
        if name == "hetero" and kind != "HETERO":
            raise ValueError(f"the market at {client.address} is a {kind} market; instantiate it with name='easy'")
        if rebuild:
            client.clear_market()
        organizer = HeteroOrganizer(client, market_id, **(organizer_kwargs or {})) if name == "hetero" else None
    except BaseException:
        client.close()
        raise
    return LearnwareMarket(client, market_id, organizer)
