"""The `lwm` command line without a market: global options on either side of the command."""

from __future__ import annotations

import pytest

from lwm.client.cli import build_parser
from lwm.client.market import DEFAULT_MARKET


def test_global_options_before_or_after_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LWM_MARKET", raising=False)
    parse = build_parser().parse_args
    assert (parse(["ls"]).market, parse(["ls"]).json) == (DEFAULT_MARKET, False)
    for argv in (["--market", "h:1", "--json", "ls"], ["ls", "--market", "h:1", "--json"], ["--json", "ls", "--market", "h:1"], ["--market", "h:1", "ls", "--json"]):
        args = parse(argv)
        assert (args.command, args.market, args.json) == ("ls", "h:1", True), argv
    assert parse(["--market", "h:1", "search", "--market", "h:2"]).market == "h:2"  # the last one wins, as with any option
    assert parse(["show", "ID", "--json"]).json and parse(["serve", "--all", "--json"]).json
