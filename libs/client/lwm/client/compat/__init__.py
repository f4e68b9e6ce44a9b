"""The reference `learnware` package's user API over a remote market.

Code written for the reference runs here with only its imports changed::

    from lwm.client.compat import BaseUserInfo, instantiate_learnware_market, generate_semantic_spec
    from lwm.client.compat import JobSelectorReuser, AveragingReuser, EnsemblePruningReuser, FeatureAugmentReuser

One module per part of the reference: `market` (learnware.market), `hetero`
(learnware.market.heterogeneous.organizer: HeteroMap, the hetero organizer), `templates`
(learnware.tests.templates), `client` (learnware.client: Beimingwu's LearnwareClient).
"""

from lwm.client.compat.client import LearnwareCheckError, LearnwareClient, LearnwaresContainer, SemanticSpecificationKey
from lwm.client.compat.hetero import HeteroMap, HeteroOrganizer
from lwm.client.compat.market import (
    AveragingReuser,
    BaseUserInfo,
    EnsemblePruningReuser,
    FeatureAugmentReuser,
    HeteroMapAlignLearnware,
    JobSelectorReuser,
    LearnwareMarket,
    MarketLearnware,
    MultipleSearchItem,
    RKMEImageSpecification,
    RKMETableSpecification,
    RKMETextSpecification,
    SearchResults,
    SingleSearchItem,
    generate_semantic_spec,
    generate_stat_spec,
    instantiate_learnware_market,
)
from lwm.client.compat.templates import LearnwareTemplate, PickleModelTemplate, StatSpecTemplate

__all__ = [
    "AveragingReuser",
    "BaseUserInfo",
    "EnsemblePruningReuser",
    "FeatureAugmentReuser",
    "HeteroMap",
    "HeteroMapAlignLearnware",
    "HeteroOrganizer",
    "JobSelectorReuser",
    "LearnwareCheckError",
    "LearnwareClient",
    "LearnwareMarket",
    "LearnwareTemplate",
    "LearnwaresContainer",
    "MarketLearnware",
    "MultipleSearchItem",
    "PickleModelTemplate",
    "RKMEImageSpecification",
    "RKMETableSpecification",
    "RKMETextSpecification",
    "SearchResults",
    "SemanticSpecificationKey",
    "SingleSearchItem",
    "StatSpecTemplate",
    "generate_semantic_spec",
    "generate_stat_spec",
    "instantiate_learnware_market",
]
