"""Python SDK of the Learnware Market (and the `lwm` command line)."""

from lwm.client.market import Learnware, MarketClient, MarketError, MixtureResult, SearchResults, SingleResult

__all__ = ["Learnware", "MarketClient", "MarketError", "MixtureResult", "SearchResults", "SingleResult"]
