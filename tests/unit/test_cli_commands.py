"""The `lwm` command line without a market: global options on either side of the command, and
commands whose distribution is not installed (`serve`, `admin`, one service) say what to install."""

from __future__ import annotations

import os
import sys

import pytest

from lwm.client import cli
from lwm.client.cli import EXIT_USAGE, build_parser, main
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


def test_plugin_commands_are_registered_by_their_distributions() -> None:
    parser = build_parser()
    assert parser.parse_args(["serve", "--all"]).handler.__module__ == "lwm.services.market.cli"
    assert parser.parse_args(["admin", "token", "list"]).handler.__module__ == "lwm.services.organizer.cli"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--all", "--port", "0"], "lwm serve needs the market services: pip install lwm-market"),
        (["--market", "h:1", "serve", "gateway", "--help"], "lwm serve needs the market services: pip install lwm-market"),
        (["admin", "backup", "/tmp/x", "--data-dir", "d"], "lwm admin needs the organizer service: pip install lwm-organizer-service"),
    ],
)
def test_a_missing_plugin_command_says_what_to_install(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    monkeypatch.setattr(cli, "entry_points", lambda group: [])
    assert main(argv) == EXIT_USAGE
    assert capsys.readouterr().err.strip() == message
    assert "not installed: pip install lwm-market" in build_parser().format_help()


def test_other_commands_still_refuse_unknown_arguments(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "entry_points", lambda group: [])
    with pytest.raises(SystemExit) as exit:
        main(["ls", "--frobnicate"])
    assert exit.value.code == EXIT_USAGE and "unrecognized arguments: --frobnicate" in capsys.readouterr().err


def test_serve_names_a_missing_service(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "lwm.services.checker", None)  # as if lwm-checker-service were not installed
    monkeypatch.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))  # importing launch sets it: leave this process as it was
    assert main(["serve", "checker", "--port", "0"]) == EXIT_USAGE
    assert "the checker service is not installed: pip install lwm-checker-service" in capsys.readouterr().err
