"""Load and faults: concurrent clients against `lwm serve --all` on PostgreSQL + an S3 server.

    .venv/bin/python bench/load_bench.py                        # 20 clients x 15 operations
    .venv/bin/python bench/load_bench.py --s3-outage 8          # stop the S3 server for 8 s mid-run
    .venv/bin/python bench/load_bench.py --clients 4 --ops 6 --json out.json
    .venv/bin/python bench/load_bench.py --replicas --uploads 16   # 1 gateway + 1 checker vs 2 + 2

Starts a throw-away PostgreSQL and SeaweedFS S3 server on loopback (stopped by PID at
the end), a market on them, and uploads a few learnwares. Then each client runs a fixed
number of operations, mixed: uploads (returning before the check), statistical
searches with a spec of its own data, and averaging reuses of two learnwares on its
data. Printed: throughput, p50/p99 latency per operation, failures by status and
message. Afterwards every acknowledged upload is fetched and its zip checked against
the SHA-256 returned at upload. With --s3-outage the S3 server is stopped once a
third of the operations are done and started again after the given seconds.

With --replicas the market runs as separate processes (organizer, searcher, reuse, and
1 gateway + 1 checker, then 2 gateways + 2 checkers, each on a fresh database and bucket,
one after the other in the same run): clients upload through the gateways in turn
(returning before the check), and it prints uploads/s and the check latency of the
uploads' check jobs (queued to finished, from the organizer's check_jobs table), p50/p99.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from lwm.client import MarketClient, MarketError
from lwm.rpc.server import wait_until_serving
from lwm.spec import RKMETableSpecification
from lwm.testing.local_servers import LocalPostgres, LocalS3Server, free_port
from lwm.testing.processes import start_control_plane
from lwm.testing.synthetic import TableWorld

OPERATION_MIX = {"upload": 0.2, "search": 0.5, "reuse": 0.3}
TASKS = 4


@dataclass
class Results:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: Counter = field(default_factory=Counter)  # (operation, code, message head) -> count
    uploaded: dict[str, str] = field(default_factory=dict)  # acknowledged id -> sha256
    done: int = 0

    def record(self, operation: str, seconds: float, error: MarketError | None = None) -> None:
        with self.lock:
            self.done += 1
            if error is None:
                self.latencies[operation].append(seconds)
            else:
                self.failures[(operation, error.code.name, error.message[:90])] += 1


def user_data(world: TableWorld, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    x, _ = world.sample(int(rng.integers(TASKS)), 200, rng)
    spec = RKMETableSpecification()
    spec.generate_stat_spec_from_data(x)
    return x, spec.to_dict()


def client_loop(address: str, ops: int, seed: int, world: TableWorld, zips: list[tuple[Path, dict]], reusable: list[str], results: Results) -> None:
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    x, spec = user_data(world, rng)
    with MarketClient(address, token="", tls_ca="", timeout_s=120) as client:
        for _ in range(ops):
            operation = pick.choices(list(OPERATION_MIX), weights=list(OPERATION_MIX.values()))[0]
            started = time.perf_counter()
            try:
                if operation == "upload":
                    zip_path, semantic = pick.choice(zips)
                    learnware = client.add_learnware(zip_path, semantic, wait=False)
                    with results.lock:
                        results.uploaded[learnware.id] = learnware.zip_sha256
                elif operation == "search":
                    client.search_learnware({}, spec, max_results=5)
                else:
                    client.reuse_averaging(pick.sample(reusable, 2), x[:100])
            except MarketError as error:
                results.record(operation, time.perf_counter() - started, error)
                continue
            results.record(operation, time.perf_counter() - started)


def verify(address: str, uploaded: dict[str, str], folder: Path) -> list[str]:
    """Problems with acknowledged uploads: missing, or a zip that differs from the acknowledged one."""
    problems = []
    with MarketClient(address, token="", tls_ca="", timeout_s=120) as client:
        for learnware_id, sha256 in uploaded.items():
            try:
                path = client.download(learnware_id, folder / f"{learnware_id}.zip")
            except MarketError as error:
                problems.append(f"{learnware_id}: {error.code.name} {error.message}")
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != sha256:
                problems.append(f"{learnware_id}: zip sha256 {digest} != acknowledged {sha256}")
            path.unlink()
    return problems


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def replicas_run(replicas: int, uploads: int, clients: int, s3: LocalS3Server, postgres: LocalPostgres, folder: Path, zips: list[tuple[Path, dict]]) -> dict:
    """Uploads through `replicas` gateways with `replicas` checkers: uploads/s and the check latency of their jobs."""
    db_url = postgres.create_database(f"replicas_{replicas}")
    env = {**s3.env(f"replicas-{replicas}"), "LWM_DB_URL": db_url}
    services = start_control_plane(env, folder / f"data-{replicas}", folder / f"logs-{replicas}", gateways=replicas, checkers=replicas, searchers=1)
    gateways = [service.address for service in services if service.service == "gateway"]
    engine = sa.create_engine(db_url)
    try:
        failures: Counter = Counter()
        lock = threading.Lock()

        def uploader(index: int) -> None:
            with MarketClient(gateways[index % len(gateways)], token="", tls_ca="", timeout_s=300) as client:
                for n in range(index, uploads, clients):
                    try:
                        client.add_learnware(*zips[n % len(zips)], wait=False)
                    except MarketError as error:
                        with lock:
                            failures[f"{error.code.name}: {error.message[:90]}"] += 1

        started = time.perf_counter()
        threads = [threading.Thread(target=uploader, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        upload_s = time.perf_counter() - started
        while True:
            with engine.connect() as connection:
                if connection.execute(sa.text("SELECT count(*) FROM check_jobs WHERE state IN ('queued', 'running')")).scalar_one() == 0:
                    break
            time.sleep(0.5)
        all_checked_s = time.perf_counter() - started
        with engine.connect() as connection:
            jobs = connection.execute(sa.text("SELECT finished_at - created_at, state FROM check_jobs")).all()
        latencies = [float(seconds) for seconds, _ in jobs]
        load = os.getloadavg()
        return {
            "gateways": replicas,
            "checkers": replicas,
            "uploads": uploads - sum(failures.values()),
            "upload_failures": dict(failures),
            "uploads_per_s": round((uploads - sum(failures.values())) / upload_s, 2),
            "all_checked_s": round(all_checked_s, 1),
            "check_latency_s": {"p50": round(percentile(latencies, 50), 1), "p99": round(percentile(latencies, 99), 1)},
            "jobs_by_state": dict(Counter(state for _, state in jobs)),
            "load_average": [round(v, 2) for v in load],
        }
    finally:
        engine.dispose()
        for service in reversed(services):
            service.stop()


def main_replicas(args: argparse.Namespace) -> int:
    folder = Path(tempfile.mkdtemp(prefix="lwm-load-replicas-"))
    s3 = LocalS3Server(folder / "s3")
    postgres = LocalPostgres(Path(tempfile.mkdtemp(prefix="lwm-load-pg-")))
    try:
        s3.start()
        postgres.start()
        world = TableWorld.make(tasks=TASKS, seed=11)
        zips = [world.write_learnware(task, folder) for task in range(TASKS)]
        runs = [replicas_run(n, args.uploads, args.upload_clients, s3, postgres, folder, zips) for n in (1, 2)]
        print(f"{args.uploads} uploads by {args.upload_clients} clients, {os.cpu_count()} cores; check workers per checker: {os.environ.get('LWM_CHECK_WORKERS', '2')}")
        for run in runs:
            latency = run["check_latency_s"]
            print(
                f"  {run['gateways']} gateway(s) + {run['checkers']} checker(s): {run['uploads_per_s']} uploads/s, check latency p50 {latency['p50']} s p99 {latency['p99']} s,"
                f" all checked after {run['all_checked_s']} s, jobs {run['jobs_by_state']}, failures {run['upload_failures'] or 'none'}, load average {' '.join(map(str, run['load_average']))}"
            )
        if args.json:
            Path(args.json).write_text(json.dumps(runs, indent=2))
        return 1 if any(run["upload_failures"] or set(run["jobs_by_state"]) != {"done"} for run in runs) else 0
    finally:
        s3.stop()
        postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(postgres.base_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--ops", type=int, default=15, help="operations per client")
    parser.add_argument("--s3-outage", type=float, default=0.0, help="stop the S3 server for this many seconds mid-run")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--replicas", action="store_true", help="compare 1 gateway + 1 checker with 2 + 2 (separate processes) on uploads and checks")
    parser.add_argument("--uploads", type=int, default=16, help="with --replicas: uploads per topology")
    parser.add_argument("--upload-clients", type=int, default=4, help="with --replicas: concurrent uploading clients")
    args = parser.parse_args()
    if args.replicas:
        return main_replicas(args)

    folder = Path(tempfile.mkdtemp(prefix="lwm-load-"))
    s3 = LocalS3Server(folder / "s3")
    postgres = LocalPostgres(Path(tempfile.mkdtemp(prefix="lwm-load-pg-")))
    market: subprocess.Popen[bytes] | None = None
    try:
        s3.start()
        postgres.start()
        port = free_port()
        address = f"127.0.0.1:{port}"
        env = {**os.environ, **s3.env(), "LWM_DB_URL": postgres.create_database("market")}
        with open(folder / "market.log", "wb") as log:
            market = subprocess.Popen([sys.executable, "-m", "lwm.client.cli", "serve", "--all", "--port", str(port), "--data-dir", str(folder / "data")], stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_until_serving(address, timeout_s=120)

        world = TableWorld.make(tasks=TASKS, seed=11)
        zips = [world.write_learnware(task, folder) for task in range(TASKS)]
        with MarketClient(address, token="", tls_ca="", timeout_s=300) as client:
            reusable = [client.add_learnware(zip_path, semantic, wait=True).id for zip_path, semantic in zips]

        results = Results()
        total = args.clients * args.ops
        threads = [threading.Thread(target=client_loop, args=(address, args.ops, seed, world, zips, reusable, results)) for seed in range(args.clients)]
        outage: dict[str, float] = {}
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        if args.s3_outage:
            while results.done < total // 3 and any(t.is_alive() for t in threads):
                time.sleep(0.05)
            s3.stop()
            outage["stopped_at_s"] = time.perf_counter() - started
            time.sleep(args.s3_outage)
            s3.start()
            outage["restarted_at_s"] = time.perf_counter() - started
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started

        # After the run (and any outage): the market must accept uploads again, and keep every acknowledged one.
        with MarketClient(address, token="", tls_ca="", timeout_s=300) as client:
            after = client.add_learnware(*zips[0], wait=False)
            results.uploaded[after.id] = after.zip_sha256
        problems = verify(address, results.uploaded, folder)

        load = os.getloadavg()
        report = {
            "clients": args.clients,
            "operations": total,
            "elapsed_s": round(elapsed, 2),
            "throughput_ops_per_s": round(total / elapsed, 2),
            "latency_ms": {op: {"count": len(v), "p50": round(percentile(v, 50) * 1000, 1), "p99": round(percentile(v, 99) * 1000, 1)} for op, v in sorted(results.latencies.items())},
            "failures": [{"operation": op, "code": code, "message": message, "count": count} for (op, code, message), count in sorted(results.failures.items())],
            "acknowledged_uploads": len(results.uploaded),
            "lost_or_corrupt": problems,
            "s3_outage": outage,
            "load_average": [round(v, 2) for v in load],
        }
        print(f"{args.clients} clients x {args.ops} ops in {elapsed:.1f} s: {report['throughput_ops_per_s']} ops/s (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores)")
        for op, stats in report["latency_ms"].items():
            print(f"  {op:<7} ok {stats['count']:>4}  p50 {stats['p50']:>8.1f} ms  p99 {stats['p99']:>8.1f} ms")
        for failure in report["failures"]:
            print(f"  failed {failure['operation']:<7} x{failure['count']:<3} {failure['code']}: {failure['message']}")
        if outage:
            print(f"  S3 stopped at {outage['stopped_at_s']:.1f} s, back at {outage['restarted_at_s']:.1f} s")
        print(f"  acknowledged uploads {len(results.uploaded)}, lost or corrupt: {len(problems)}")
        for problem in problems:
            print(f"    {problem}")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
        return 1 if problems else 0
    finally:
        if market is not None:
            market.terminate()
            market.wait(timeout=60)
        s3.stop()
        postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(postgres.base_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
