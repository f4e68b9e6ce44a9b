"""`lwm web`: the Market API over HTTP/JSON and the web UI, in front of a gateway.

A command of the `lwm` CLI, found through the entry-point group lwm.commands.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lwm.learnware.settings import env_int

DEFAULT_UI_DIR = Path(__file__).resolve().parent / "static"


def cmd_web(args: argparse.Namespace) -> int:
    import uvicorn

    from lwm.services.web.app import build_app

    ui_dir = Path(args.ui_dir) if args.ui_dir else DEFAULT_UI_DIR
    app = build_app(args.gateway, timeout_s=args.timeout, ui_dir=ui_dir)
    print(f"web serving at http://{args.host}:{args.port} (gateway {args.gateway})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def add_web_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`lwm web`: registered in the entry-point group lwm.commands (pyproject.toml)."""
    web = sub.add_parser("web", help="serve the Market API over HTTP/JSON and the web UI")
    web.set_defaults(handler=cmd_web)
    web.add_argument("--gateway", default=os.environ.get("LWM_GATEWAY", "127.0.0.1:50051"), help="address of the gateway (env LWM_GATEWAY, default 127.0.0.1:50051)")
    web.add_argument("--host", default=os.environ.get("LWM_HOST", "127.0.0.1"), help="address to bind (env LWM_HOST, default 127.0.0.1)")
    web.add_argument("--port", type=int, default=env_int("LWM_WEB_PORT", 8080, minimum=0), help="HTTP port (env LWM_WEB_PORT, default 8080)")
    web.add_argument("--timeout", type=float, default=300.0, help="deadline of each call to the gateway in seconds (default 300)")
    web.add_argument("--ui-dir", help=f"built web UI to serve at / (default {DEFAULT_UI_DIR})")
