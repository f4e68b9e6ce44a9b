"""CPU vs CUDA on the same machine: spec generation, statistical search, hetero engine training.

    .venv/bin/python bench/gpu_bench.py             # the full run (meant for a CUDA machine)
    .venv/bin/python bench/gpu_bench.py --quick     # small sizes: a smoke run of every row

Without CUDA every row runs on the CPU only and says "no CUDA".

(a) specs: RKME table spec of a 10,000 x 20 clustered table (K = 100, 3 steps), RKME
    image spec of 300 blob images 3x32x32 (K = 50, 10 steps), RKME text spec of 2,000
    synthetic sentences (MiniLM embedding + RKME); median wall seconds of a few repeats
    on each device after a warm-up, and the squared MMD between the CPU and CUDA specs
    (relative to ||Phi_cpu||^2).
(b) search: bench/search_bench.py's world (60 clusters in 16 dimensions, specs of 100
    points) at 10k and 100k learnwares, stacked in a SpecStack per device as the
    searcher's LearnwareIndex holds them; per query (UserSpec.make + rank, as the
    searcher's search_shard does it) p50/p95 ms, exhaustive and indexed (sketch
    shortlist + exact re-rank); top-1 identification and top-1 agreement CPU vs CUDA.
    The CPU uses the fused native kernel when a C compiler is there (as the searcher).
(c) hetero: the engine trained (train_engine, EngineConfig()) on 12 table learnwares
    (diabetes, wine, breast_cancer x 4 tasks of libs/learnware/hetero_world.py) on each
    device; wall seconds, the largest difference of the mapped specs' points between the
    two engines and between the CPU engine run on CPU and on CUDA, and top-1
    identification of 36 users with renamed, shuffled column subsets for each engine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from search_bench import GAMMA, World, make_users  # noqa: E402
from spec_fixture_data import blob_images, clustered_table, synthetic_sentences  # noqa: E402

CUDA = torch.cuda.is_available()


def devices() -> list[str]:
    return ["cpu", "cuda"] if CUDA else ["cpu"]


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    sync()
    started = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - started, out


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# ----------------------------------------------------------------------------- (a) specs


def bench_specs(args: argparse.Namespace) -> None:
    from lwm.spec import RKMEImageSpecification, RKMETableSpecification, RKMETextSpecification

    cases: list[tuple[str, Callable[[str], Any]]] = []
    table = clustered_table(args.table_rows, args.table_dim, seed=0)
    cases.append((f"table {args.table_rows}x{args.table_dim} K=100", lambda dev: _fit(RKMETableSpecification(device=dev), table, K=100)))
    images = blob_images(args.images, seed=0)
    cases.append((f"image {args.images}x3x32x32 K=50", lambda dev: _fit(RKMEImageSpecification(device=dev), images, K=50)))
    if not args.no_text:
        sentences = synthetic_sentences(args.sentences, seed=0)
        cases.append((f"text {args.sentences} sentences K=100", lambda dev: _fit(RKMETextSpecification(device=dev), sentences, K=100)))
    print(f"\n(a) spec generation: median of {args.repeats} after a warm-up; MMD^2(cpu, cuda) / ||Phi_cpu||^2")
    print(f"{'spec':<32} {'cpu s':>8} {'cuda s':>8} {'speed-up':>9} {'rel. MMD^2':>11}")
    for name, make in cases:
        seconds: dict[str, float] = {}
        specs: dict[str, Any] = {}
        for dev in devices():
            make(dev)  # warm-up: CUDA context, kernels, the text model on this device
            runs = [timed(lambda: make(dev)) for _ in range(args.repeats)]
            seconds[dev] = statistics.median(r[0] for r in runs)
            specs[dev] = runs[-1][1]
        if CUDA:
            cpu, gpu = specs["cpu"], specs["cuda"]
            rel = cpu.dist(gpu) / cpu.inner_prod(cpu)
            print(f"{name:<32} {seconds['cpu']:>8.3f} {seconds['cuda']:>8.3f} {seconds['cpu'] / seconds['cuda']:>8.1f}x {rel:>11.2e}", flush=True)
        else:
            print(f"{name:<32} {seconds['cpu']:>8.3f} {'no CUDA':>8}", flush=True)


def _fit(spec: Any, data: Any, K: int) -> Any:
    spec.generate_stat_spec_from_data(data, K=K)
    return spec


# ----------------------------------------------------------------------------- (b) search


def build_stack(Z: np.ndarray, B: np.ndarray, device: str) -> tuple[Any, float]:
    from lwm.services.searcher.stack import SpecStack

    def build() -> Any:
        stack = SpecStack((Z.shape[2],), round(GAMMA, 12), torch.device(device))
        for i in range(len(Z)):
            stack.add(f"lw{i:06d}", Z[i], B[i])
        stack.complete_new_rows()
        return stack

    seconds, stack = timed(build)
    return stack, seconds


def search_once(stack: Any, z: np.ndarray, beta: np.ndarray, min_rows: int) -> tuple[float, int, float]:
    """(seconds, best row, its MMD^2) of one query, as search_shard ranks a group."""
    from lwm.services.searcher.statistical import IndexSettings, UserSpec, rank

    sync()
    started = time.perf_counter()
    user = UserSpec.make(z, beta, GAMMA, stack.device)
    ranked = rank(user, stack.view(None), 25, IndexSettings(min_rows=min_rows))
    elapsed = time.perf_counter() - started  # rank() ends in .tolist(): synchronised
    return elapsed, ranked.rows[0], ranked.mmds[0]


def bench_search(args: argparse.Namespace) -> None:
    from lwm.services.searcher.native_kernel import native_kernels

    world = World.make(60, 16, 1.5, 0)
    native = native_kernels() is not None
    print(f"\n(b) search: {args.users} single-source users per market; per query UserSpec.make + rank (top 25); CPU cross terms: {'fused native kernel' if native else 'torch'}")
    print(f"{'market':>8} {'mode':<11} {'dev':<5} {'build s':>8} {'p50 ms':>8} {'p95 ms':>8} {'top1':>6} {'agree':>6} {'max rel dMMD':>13}")
    for n in args.sizes:
        rng = np.random.default_rng(n)
        clusters, weights, Z, B = world.learnwares(n, rng)
        users = make_users(world, clusters, weights, args.users, 0, 400, rng)
        stacks = {}
        build_s = {}
        for dev in devices():
            stacks[dev], build_s[dev] = build_stack(Z, B, dev)
        for mode, min_rows in (("exhaustive", n + 1), ("indexed", 0)):
            best: dict[str, list[int]] = {}
            mmd: dict[str, list[float]] = {}
            for dev in devices():
                search_once(stacks[dev], users.Z[0], users.B[0], min_rows)  # warm-up
                results = [search_once(stacks[dev], users.Z[u], users.B[u], min_rows) for u in range(len(users.sources))]
                lat = [r[0] * 1e3 for r in results]
                best[dev] = [r[1] for r in results]
                mmd[dev] = [r[2] for r in results]
                top1 = np.mean([b == s[0] for b, s in zip(best[dev], users.sources)])
                if dev == "cuda":
                    agree = f"{np.mean([a == b for a, b in zip(best['cpu'], best['cuda'])]):>6.3f}"
                    rel = f"{max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(mmd['cpu'], mmd['cuda'])):>13.2e}"
                else:
                    agree, rel = f"{'':>6}", f"{'':>13}"
                print(f"{n:>8} {mode:<11} {dev:<5} {build_s[dev]:>8.1f} {pct(lat, 50):>8.2f} {pct(lat, 95):>8.2f} {top1:>6.3f} {agree} {rel}", flush=True)
        if not CUDA:
            print(f"{'':>8} no CUDA: CPU rows only")
        print(f"{'':>8} ({load()})")
        del stacks


# ----------------------------------------------------------------------------- (c) hetero


def bench_hetero(args: argparse.Namespace) -> None:
    from lwm.spec import RKMETableSpecification
    from lwm.spec.hetero import EngineConfig, HeteroEngine, description_embeddings, herd_training_table, train_engine
    from lwm.testing.hetero_world import HeteroTableWorld

    def table_spec(x: np.ndarray) -> RKMETableSpecification:
        spec = RKMETableSpecification(device="cpu")
        spec.generate_stat_spec_from_data(x)
        return spec

    worlds = [HeteroTableWorld.make(name, tasks=args.hetero_tasks, seed=0) for name in args.hetero_datasets]
    learnwares = [(world, task, table_spec(world.learnware_table(task).x)) for world in worlds for task in range(args.hetero_tasks)]
    tables = [herd_training_table(spec, world.learnware_table(task).descriptions, EngineConfig.pseudo_rows, seed=task) for world, task, spec in learnwares]
    ids = [f"{world.dataset.name}-{task}" for world, task, _ in learnwares]
    config = EngineConfig(steps=args.hetero_steps)
    users = [(world, task, world.user_table(task, seed=seed)) for world in worlds for task in range(args.hetero_tasks) for seed in (1, 2, 3)]
    user_specs = [table_spec(user.x) for _, _, user in users]
    print(f"\n(c) hetero engine: {len(tables)} learnwares ({', '.join(args.hetero_datasets)} x {args.hetero_tasks}), {config.steps} steps; {len(users)} users")
    print(f"{'dev':<5} {'train s':>8} {'map s':>9} {'top1':>6}")
    engines: dict[str, Any] = {}
    mapped: dict[str, list[Any]] = {}
    description_embeddings([text for table in tables for text in table.descriptions])  # the MiniLM embeddings (cached), outside the timings
    train_engine(tables[:1], ids[:1], EngineConfig(steps=2), "cuda" if CUDA else "cpu")  # warm-up (CUDA context, kernels)
    for dev in devices():
        seconds, engines[dev] = timed(lambda: train_engine(tables, ids, config, dev))
        # Map on the engine's device: specs moved there as the searcher's HeteroIndex holds them.
        map_s, mapped[dev] = timed(lambda: [engines[dev].map_spec(_to(spec, dev), world.learnware_table(task).descriptions) for world, task, spec in learnwares])
        hits = []
        for (world, task, user), spec in zip(users, user_specs):
            user_mapped = engines[dev].map_spec(_to(spec, dev), user.descriptions)
            candidates = [row for row, (owner, _, _) in enumerate(learnwares) if owner.dataset.task == world.dataset.task]
            best = candidates[int(np.argmin([user_mapped.dist(mapped[dev][row]) for row in candidates]))]
            hits.append(learnwares[best][0] is world and learnwares[best][1] == task)
        print(f"{dev:<5} {seconds:>8.2f} {map_s:>9.3f} {np.mean(hits):>6.3f}", flush=True)
    if CUDA:
        z_cpu = np.concatenate([m.get_z() for m in mapped["cpu"]])
        z_gpu = np.concatenate([m.get_z() for m in mapped["cuda"]])
        moved = HeteroEngine.from_bytes(engines["cpu"].to_bytes(), "cuda")
        z_moved = np.concatenate([moved.embed_rows(spec.get_z(), world.learnware_table(task).descriptions) for world, task, spec in learnwares])
        print(f"mapped points (radius 4): max |cpu-trained - cuda-trained| = {np.abs(z_cpu - z_gpu).max():.2e}; "
              f"cpu-trained engine run on cuda vs cpu: {np.abs(z_moved - z_cpu).max():.2e}")
    else:
        print("no CUDA: CPU row only")


def _to(spec: Any, device: str) -> Any:
    from lwm.spec import RKMETableSpecification

    return RKMETableSpecification.from_dict(spec.to_dict(), device=device)


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: every row in well under a minute")
    parser.add_argument("--parts", default="specs,search,hetero")
    parser.add_argument("--no-text", action="store_true", help="skip the text spec row (needs the MiniLM package)")
    args = parser.parse_args()
    quick = args.quick
    args.table_rows, args.table_dim = (2_000, 20) if quick else (10_000, 20)
    args.images = 60 if quick else 300
    args.sentences = 200 if quick else 2_000
    args.repeats = 1 if quick else 3
    args.sizes = [1_000] if quick else [10_000, 100_000]
    args.users = 5 if quick else 40
    args.hetero_datasets = ["diabetes", "wine"] if quick else ["diabetes", "wine", "breast_cancer"]
    args.hetero_tasks = 2 if quick else 4
    args.hetero_steps = 20 if quick else 250

    name = torch.cuda.get_device_name(0) if CUDA else "no CUDA"
    print(f"gpu bench: device {name}; torch {torch.__version__} (CUDA {torch.version.cuda}); {torch.get_num_threads()} CPU threads, {os.cpu_count()} CPUs; {load()}")
    parts = args.parts.split(",")
    if "specs" in parts:
        bench_specs(args)
    if "search" in parts:
        bench_search(args)
    if "hetero" in parts:
        bench_hetero(args)
    print(f"\ndone; {load()}")


if __name__ == "__main__":
    main()
