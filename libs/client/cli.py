"""`lwm`: the market's command line (users, operators and `lwm serve`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import grpc
import numpy as np
import pandas as pd

from lwm.client.market import DEFAULT_MARKET, Learnware, MarketClient, MarketError, SearchResults

EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_INVALID = 1, 2, 3, 4


def load_array(path: str | Path) -> np.ndarray:
    """A 2-D float array from .npy or .csv (a header row is detected and skipped)."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    frame = pd.read_csv(path, header=None)
    if frame.shape[0] > 0 and not all(_is_number(v) for v in frame.iloc[0]):
        frame = pd.read_csv(path)
    return frame.to_numpy(dtype=np.float64)


def _is_number(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _read_json(path: str | None) -> dict[str, Any]:
    return json.loads(Path(path).read_text()) if path else {}


def _print_learnwares(learnwares: Sequence[Learnware]) -> None:
    print(f"{'ID':<18} {'STATUS':<10} {'NAME'}")
    for lw in learnwares:
        print(f"{lw.id:<18} {lw.status:<10} {lw.name}")


def print_search(results: SearchResults) -> None:
    print(f"search path: {results.search_path}")
    for message in results.messages:
        print(f"  note: {message}")
    print(f"{'RANK':<5} {'SCORE':>6}  {'ID':<18} NAME")
    for rank, item in enumerate(results.get_single_results(), 1):
        print(f"{rank:<5} {item.score:>6.3f}  {item.learnware.id:<18} {item.learnware.name}")
    for mixture in results.get_multiple_results():
        parts = ", ".join(f"{lw.id} ({lw.name}) x {w:.2f}" for lw, w in zip(mixture.learnwares, mixture.weights))
        print(f"mixture score {mixture.score:.3f}: {parts}")


def _as_json(value: Any) -> str:
    return json.dumps(value, default=lambda o: dataclasses.asdict(o) if dataclasses.is_dataclass(o) else str(o), indent=2)


def cmd_serve(args: argparse.Namespace) -> int:
    # Imported here (as in cmd_spec): torch loads slowly and client commands never need it.
    from lwm.services.launch import SERVICES, Running, ServeConfig, serve_forever, start_all, start_service

    config = ServeConfig()
    for name in ("host", "organizer", "checker", "searcher", "reuse", "db_url"):
        if getattr(args, name, None):
            setattr(config, name, getattr(args, name))
    if args.data_dir:
        config.data_dir = Path(args.data_dir)
    if args.all:
        running, gateway = start_all(config, args.port if args.port is not None else 50051)
        print(f"market serving at {gateway} (data in {config.data_dir})", flush=True)
    else:
        if args.service not in SERVICES:
            print(f"lwm serve: name a service ({', '.join(SERVICES)}) or use --all", file=sys.stderr)
            return EXIT_USAGE
        running = Running()
        server = start_service(args.service, args.port or 0, config, running)
        print(f"{args.service} serving at {server.address}", flush=True)
    serve_forever(running)
    return 0


def cmd_spec(args: argparse.Namespace) -> int:
    from lwm.spec import generate_stat_spec

    data = load_array(args.input)
    spec = generate_stat_spec(type=args.kind, X=data)
    spec.save(args.output)
    print(f"wrote {spec.type} of {data.shape[0]} rows x {data.shape[1:]} to {args.output}")
    return 0


def cmd_upload(args: argparse.Namespace, client: MarketClient) -> int:
    learnware = client.add_learnware(args.zip, _read_json(args.semantic), wait=not args.no_wait)
    if args.json:
        print(_as_json(learnware))
    else:
        print(f"{learnware.id} {learnware.status}")
        for step in learnware.check_report.get("steps", []):
            mark = "ok " if step.get("passed") else "FAIL"
            print(f"  [{mark}] {step['name']}: {'; '.join(step.get('messages', []))}")
    return 0 if learnware.status in ("USABLE", "PENDING") else EXIT_INVALID


def cmd_search(args: argparse.Namespace, client: MarketClient) -> int:
    semantic = _read_json(args.semantic)
    if args.name:
        semantic["Name"] = {"Values": args.name, "Type": "String"}
    results = client.search_learnware(semantic, args.stat, max_search_num=args.max_search_num, mixture_strategy=args.strategy)
    if args.json:
        print(_as_json(results))
    else:
        print_search(results)
    return 0


def cmd_reuse(args: argparse.Namespace, client: MarketClient) -> int:
    if args.method != "averaging":
        print(f"lwm reuse: method {args.method!r} is not available yet; use --method averaging", file=sys.stderr)
        return EXIT_USAGE
    predictions = client.reuse_averaging(args.ids, load_array(args.data), mode=args.mode)
    if args.output:
        np.savetxt(args.output, predictions.reshape(predictions.shape[0], -1), delimiter=",")
        print(f"wrote {predictions.shape[0]} predictions to {args.output}")
    else:
        np.savetxt(sys.stdout, predictions.reshape(predictions.shape[0], -1), delimiter=",", fmt="%.6g")
    return 0


def cmd_ls(args: argparse.Namespace, client: MarketClient) -> int:
    learnwares = list(client.list_learnwares(statuses=args.status or ()))
    if args.json:
        print(_as_json(learnwares))
    else:
        _print_learnwares(learnwares)
    return 0


def cmd_show(args: argparse.Namespace, client: MarketClient) -> int:
    print(_as_json(client.get_learnware(args.id)))
    return 0


def cmd_rm(args: argparse.Namespace, client: MarketClient) -> int:
    for learnware_id in args.ids:
        client.delete_learnware(learnware_id)
        print(f"deleted {learnware_id}")
    return 0


def cmd_download(args: argparse.Namespace, client: MarketClient) -> int:
    path = client.download(args.id, args.output or f"{args.id}.zip")
    print(f"saved {path}")
    return 0


def cmd_info(args: argparse.Namespace, client: MarketClient) -> int:
    print(_as_json(client.market_info()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lwm", description="Learnware Market: share, find and reuse trained models.")
    parser.add_argument("--market", default=os.environ.get("LWM_MARKET", DEFAULT_MARKET), help="gateway address host:port (env LWM_MARKET)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run market services")
    serve.add_argument("service", nargs="?", help="organizer, checker, searcher, reuse or gateway")
    serve.add_argument("--all", action="store_true", help="run all five services in this process, wired over loopback gRPC")
    serve.add_argument("--port", type=int, help="port of the service (of the gateway with --all; default 50051)")
    serve.add_argument("--host", help="address to bind (env LWM_HOST, default 127.0.0.1)")
    serve.add_argument("--data-dir", help="organizer data directory (env LWM_DATA_DIR, default .lwm-data)")
    serve.add_argument("--db-url", help="SQLAlchemy URL of the metadata database (env LWM_DB_URL; default SQLite in the data dir)")
    for name in ("organizer", "checker", "searcher", "reuse"):
        serve.add_argument(f"--{name}", help=f"address of the {name} service (env LWM_{name.upper()})")

    spec = sub.add_parser("spec", help="make a statistical specification from local data")
    spec.add_argument("kind", choices=["table", "image", "text"])
    spec.add_argument("input", help=".csv or .npy file")
    spec.add_argument("-o", "--output", required=True, help="spec JSON to write")

    upload = sub.add_parser("upload", help="upload a learnware zip")
    upload.add_argument("zip")
    upload.add_argument("--semantic", required=True, help="semantic specification JSON")
    upload.add_argument("--no-wait", action="store_true", help="return at once instead of waiting for the check")

    search = sub.add_parser("search", help="search learnwares")
    search.add_argument("--semantic", help="semantic specification JSON (empty fields match everything)")
    search.add_argument("--name", help="text to look for in names and descriptions")
    search.add_argument("--stat", help="statistical specification JSON made with `lwm spec`")
    search.add_argument("--max-search-num", type=int, default=5, help="most learnwares in a mixture")
    search.add_argument("--strategy", choices=["greedy", "auto"], default="greedy", help="mixture search strategy")

    reuse = sub.add_parser("reuse", help="reuse learnwares on your data")
    reuse.add_argument("--method", required=True, choices=["job_selector", "averaging", "ensemble_pruning", "feature_augment"])
    reuse.add_argument("--ids", nargs="+", required=True, help="learnware ids")
    reuse.add_argument("--data", required=True, help=".csv or .npy file of the rows to predict")
    reuse.add_argument("--mode", default="mean", choices=["mean", "vote_by_label", "vote_by_prob"], help="averaging mode")
    reuse.add_argument("-o", "--output", help="write predictions to this CSV instead of stdout")

    ls = sub.add_parser("ls", help="list learnwares")
    ls.add_argument("--status", action="append", choices=["PENDING", "INVALID", "NONUSABLE", "USABLE"], help="only these statuses")
    show = sub.add_parser("show", help="show one learnware with its check report")
    show.add_argument("id")
    rm = sub.add_parser("rm", help="delete learnwares")
    rm.add_argument("ids", nargs="+")
    download = sub.add_parser("download", help="download a learnware zip")
    download.add_argument("id")
    download.add_argument("-o", "--output")
    sub.add_parser("info", help="what the market is and holds")
    return parser


CLIENT_COMMANDS = {"upload": cmd_upload, "search": cmd_search, "reuse": cmd_reuse, "ls": cmd_ls, "show": cmd_show, "rm": cmd_rm, "download": cmd_download, "info": cmd_info}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("LWM_LOG_LEVEL", "WARNING"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "spec":
            return cmd_spec(args)
        with MarketClient(args.market) as client:
            return CLIENT_COMMANDS[args.command](args, client)
    except MarketError as error:
        print(f"lwm: {error.message} ({error.code.name})", file=sys.stderr)
        if error.code == grpc.StatusCode.NOT_FOUND:
            return EXIT_NOT_FOUND
        if error.code == grpc.StatusCode.INVALID_ARGUMENT:
            return EXIT_INVALID
        return EXIT_ERROR
    except (OSError, ValueError) as error:
        print(f"lwm: {error}", file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
