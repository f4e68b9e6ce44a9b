"""`lwm serve`: every market service in one process, or one of them.

A command of the `lwm` CLI (lwm.client.cli), which finds it through the entry-point group
lwm.commands; the services are imported only when it runs (torch loads slowly, and a
per-service image installs only its own service).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lwm.client.cli import EXIT_USAGE


def cmd_serve(args: argparse.Namespace) -> int:
    from lwm.services.market.launch import SERVICES, Running, ServeConfig, ServiceNotInstalledError, serve_forever, start_all, start_service, start_web

    if args.web_port is not None and not args.all:
        print("lwm serve: --web-port needs --all (or run `lwm web --gateway ADDRESS` beside the gateway)", file=sys.stderr)
        return EXIT_USAGE
    config = ServeConfig()
    for name in ("host", "organizer", "checker", "searcher", "reuse", "db_url", "market_kind"):
        if getattr(args, name, None):
            setattr(config, name, getattr(args, name))
    if args.data_dir:
        config.data_dir = Path(args.data_dir)
    try:
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
    except ServiceNotInstalledError as error:
        print(f"lwm serve: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.web_port is not None:
        try:
            print(f"web UI at {start_web(running, gateway, config.host, args.web_port)}/", flush=True)
        except (ServiceNotInstalledError, RuntimeError) as error:
            running.stop()
            print(f"lwm serve: {error}", file=sys.stderr)
            return EXIT_USAGE if isinstance(error, ServiceNotInstalledError) else 1
    serve_forever(running)
    return 0


def add_serve_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`lwm serve`: registered in the entry-point group lwm.commands (pyproject.toml)."""
    serve = sub.add_parser("serve", help="run market services")
    serve.set_defaults(handler=cmd_serve)
    serve.add_argument("service", nargs="?", help="organizer, checker, searcher, reuse or gateway")
    serve.add_argument("--all", action="store_true", help="run all five services in this process, wired over loopback gRPC")
    serve.add_argument("--port", type=int, help="port of the service (of the gateway with --all; default 50051)")
    serve.add_argument("--web-port", type=int, help="with --all: also serve the Market API over HTTP/JSON and the web UI on this port, as `lwm web` does (needs lwm-web-service)")
    serve.add_argument("--host", help="address to bind (env LWM_HOST, default 127.0.0.1)")
    serve.add_argument("--data-dir", help="organizer data directory (env LWM_DATA_DIR, default .lwm-data)")
    serve.add_argument("--db-url", help="SQLAlchemy URL of the metadata database (env LWM_DB_URL; default SQLite in the data dir)")
    serve.add_argument("--market-kind", choices=["easy", "hetero"], help="easy, or hetero: the searcher trains the hetero engine and the gateway searches across feature spaces (env LWM_MARKET_KIND, default easy)")
    for name in ("organizer", "checker", "searcher", "reuse"):
        serve.add_argument(f"--{name}", help=f"address of the {name} service (env LWM_{name.upper()})")
