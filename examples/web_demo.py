"""The market in a browser (`make web-demo`).

Starts the demo market (`lwm serve --all`, data under ./.lwm-examples/web-demo/) with `lwm web` in front
of it, uploads example table learnwares, writes a user's statistical specification file to try
a search with, prints "Web UI: http://127.0.0.1:PORT/" and keeps both up until Ctrl-C (or
SIGTERM); both are then stopped by their PIDs.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import numpy as np
from _market import ROOT, free_port, running_market, section

from lwm.client import MarketClient
from lwm.spec import RKMETableSpecification
from lwm.testing.synthetic import TableWorld
from lwm.testing.web import WebProcess


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".lwm-examples" / "web-demo", help="where the market's data, the logs, the zips and the user's specification go (emptied first)")
    parser.add_argument("--web-port", type=int, default=8080, help="port of the web UI on 127.0.0.1 (default 8080; 0 = a free port)")
    parser.add_argument("--learnwares", type=int, default=6, help="example table learnwares to upload (default 6)")
    args = parser.parse_args()
    if args.learnwares < 1:
        parser.error("--learnwares must be at least 1")
    return args


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds the `with` blocks, which stop the market and the web component.
    raise SystemExit(0)


def main() -> int:
    args = parse_args()
    work_dir = args.work_dir.resolve()
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    with running_market(work_dir) as market:
        world = TableWorld.make(tasks=args.learnwares)
        with MarketClient(market.address) as client:
            section(f"building and uploading {args.learnwares} table learnwares")
            for task in range(args.learnwares):
                zip_path, semantic = world.write_learnware(task, work_dir / "zips")
                learnware = client.add_learnware(zip_path, semantic, wait=True)
                print(f"  {learnware.id}  {learnware.status:<8} {learnware.name}", flush=True)

        # A user whose data mix the second and third regions: the search form takes this file
        # and answers with single learnwares and, when it beats them, a mixture.
        regions = [task for task in (1, 2) if task < args.learnwares] or [0]
        x_user, _ = world.sample_mixture(regions, 600, np.random.default_rng(42))
        user_spec = RKMETableSpecification()
        user_spec.generate_stat_spec_from_data(x_user)
        spec_path = work_dir / "user_spec.json"
        user_spec.save(str(spec_path))

        web = WebProcess(work_dir / "web.log")
        url = web.start(market.address, args.web_port or free_port())
        try:
            section(f"lwm web started in front of {market.address} (log {web.log_path})")
            print(f"Try a statistical search with the specification file {spec_path}", flush=True)
            print(f"Web UI: {url}/", flush=True)
            print("Press Ctrl-C to stop the market and the web UI.", flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            section(f"lwm web stopped (exit code {web.stop()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
