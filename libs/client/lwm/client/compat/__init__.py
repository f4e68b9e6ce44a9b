"""The reference `learnware` package's user API over a remote market.

Code written for the reference runs here with only its imports changed::

    from lwm.client.compat import BaseUserInfo, instantiate_learnware_market, generate_semantic_spec
    from lwm.client.compat import JobSelectorReuser, AveragingReuser, EnsemblePruningReuser, FeatureAugmentReuser

One module per part of the reference: `market` (learnware.market), `hetero`
(learnware.market.heterogeneous.organizer: HeteroMap, the hetero organizer).
"""

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

__all__ = [
    "AveragingReuser",
    "BaseUserInfo",
    "EnsemblePruningReuser",
    "FeatureAugmentReuser",
    "HeteroMap",
    "HeteroMapAlignLearnware",
    "HeteroOrganizer",
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
