"""Statistical search at market scale, side by side with the reference `learnware` package.

    .venv/bin/python bench/search_bench.py --quick     # 1k and 10k learnwares, few users (a few minutes)
    .venv/bin/python bench/search_bench.py             # 1k, 10k and 100k learnwares
    .venv/bin/python bench/search_bench.py --sizes 1000000 --users 200 --exhaustive-users 20   # the 1M row

World: a Gaussian mixture of many clusters in d dimensions. Each learnware's data come
from a few clusters with its own weights; its RKME table spec (K = 100 points) is drawn
directly from those clusters (points allocated to clusters by weight, beta = cluster
weight / points in it), which is an unbiased kernel mean embedding without the cost of
a fit (no k-means per learnware), so 1M specs take minutes; they are made 10,000 at a
time and fed to the index as they are made, so the bench holds one chunk, not 12.8 GB of
float64 specs (above the reference's largest market). Users hold real rows (from one learnware's clusters,
or half from each of two learnwares') and make their spec with lwm.spec's RKME fit, as
a user of the market would.

Measured, for each market size: building the searcher's index from the organizer's
change events (build time, the index's bytes per spec, the process's memory growth per
learnware); p50/p99 latency of a statistical search through a real searcher gRPC
server, exhaustive and indexed (sketch shortlist + exact MMD re-rank), exhaustive on the
first --exhaustive-users users only where the market is large (at 1M one exhaustive
search is ~1e10 kernel entries); top-1 agreement of indexed with exhaustive; the reference
package's EasyStatSearcher on the same specs (in its own venv, .bench-venv, in a
subprocess) at the sizes it finishes in reasonable time; top-1 and top-5
identification of a one-learnware user's source, and mixture recall (both sources of a
two-learnware user in the returned mixture), for ours and for the reference; up to
--analysis-max learnwares, every two-source user's mixtures analysed (bench/mixture_analysis.py:
exact MMD of the returned mixture against the true pair's, the sources' ranks against the
searchers' mixture pools, and the accuracy of reusing the mixture on the user's labels).
The reference's venv is created when missing (pip install learnware==0.4.0.post1).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from reference_venv import ensure_reference_venv

# As `lwm serve` (services/market/lwm/services/market/launch.py): OpenMP threads sleep instead of spinning between kernels.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
SPEC_POINTS = 100
QMC_BASES = 64
MAX_CLUSTERS = 4  # a learnware's data come from 2 to 4 clusters
GAMMA = 0.1
MAX_SEARCH_NUM = 5  # the searches' max_search_num (the reference seeks mixtures among its best MAX_SEARCH_NUM^2 singles)


# ----------------------------------------------------------------------------- world


@dataclass
class World:
    centers: np.ndarray  # (clusters, d)
    scales: np.ndarray  # (clusters,) standard deviation of each cluster

    @classmethod
    def make(cls, clusters: int, dim: int, spread: float, seed: int) -> World:
        rng = np.random.default_rng(seed)
        return cls(rng.normal(scale=spread, size=(clusters, dim)), rng.uniform(0.6, 1.4, size=clusters))

    def learnwares(self, n: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
        """n learnwares: their clusters, weights, and RKME specs Z (n, K, d), beta (n, K).

        Each cluster gets points in proportion to its weight, placed by a randomly shifted
        scrambled Sobol sequence through the normal quantile function: about the MMD to the
        learnware's distribution that a real RKME fit on 400-1000 rows reaches (measured:
        0.0067 vs 0.0061-0.0066 for 16-d data of three clusters; iid points give 0.0090).
        """
        from scipy.special import ndtri
        from scipy.stats import qmc

        dim = self.centers.shape[1]
        bases = np.stack([qmc.Sobol(dim, scramble=True, seed=int(rng.integers(2**31))).random(128) for _ in range(QMC_BASES)])
        sizes = rng.integers(2, MAX_CLUSTERS + 1, size=n)
        chosen = np.argsort(rng.random((n, len(self.centers))), axis=1)[:, :MAX_CLUSTERS]
        active = np.arange(MAX_CLUSTERS)[None, :] < sizes[:, None]
        w = np.where(active, rng.gamma(2.0, size=(n, MAX_CLUSTERS)), 0.0)  # Dirichlet(2) over the active clusters
        w /= w.sum(1, keepdims=True)
        # Points per cluster in proportion to its weight, at least one each, SPEC_POINTS in all.
        counts = np.where(active, np.maximum(1, np.floor(w * SPEC_POINTS)), 0).astype(np.int64)
        rows = np.arange(n)
        while (over := counts.sum(1) > SPEC_POINTS).any():
            counts[rows[over], np.argmax(counts[over], axis=1)] -= 1
        counts[rows, np.argmax(w, axis=1)] += SPEC_POINTS - counts.sum(1)
        ends = np.cumsum(counts, axis=1)
        point = np.arange(SPEC_POINTS)
        owner = (point[None, :, None] >= ends[:, None, :]).sum(-1)  # (n, K): which of the chosen clusters
        rank = point[None, :] - (ends - counts)[rows[:, None], owner]  # index of the point within its cluster
        B = (w / np.maximum(counts, 1))[rows[:, None], owner]
        base = rng.integers(QMC_BASES, size=(n, MAX_CLUSTERS))
        shift = rng.random((n, MAX_CLUSTERS, dim))
        Z = np.empty((n, SPEC_POINTS, dim))
        for start in range(0, n, 10_000):  # bounded temporaries
            part = slice(start, start + 10_000)
            r = rows[part, None]
            uniform = (bases[base[r, owner[part]], rank[part]] + shift[r, owner[part]]) % 1.0
            cluster = chosen[r, owner[part]]
            Z[part] = self.centers[cluster] + self.scales[cluster][..., None] * ndtri(np.clip(uniform, 1e-9, 1 - 1e-9))
        clusters = [chosen[i, : sizes[i]] for i in range(n)]
        weights = [w[i, : sizes[i]] for i in range(n)]
        return clusters, weights, Z, B

    def sample(self, clusters: np.ndarray, weights: np.ndarray, rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Rows from the clusters with these weights, and the cluster each row was drawn from (its label)."""
        drawn = clusters[rng.choice(len(clusters), size=rows, p=weights)]
        return self.centers[drawn] + self.scales[drawn, None] * rng.normal(size=(rows, self.centers.shape[1])), drawn


@dataclass
class Users:
    """Users' specs, their rows with labels (each row's cluster) and their true sources: one learnware, or two (half of the rows from each)."""

    Z: np.ndarray  # (users, K, d)
    B: np.ndarray
    sources: list[list[int]]
    x: list[np.ndarray]
    y: list[np.ndarray]

    def subset(self, served: list[int]) -> Users:
        return Users(self.Z[served], self.B[served], [self.sources[u] for u in served], [self.x[u] for u in served], [self.y[u] for u in served])


def make_users(world: World, clusters: list[np.ndarray], weights: list[np.ndarray], singles: int, mixtures: int, rows: int, rng: np.random.Generator) -> Users:
    from lwm.spec import RKMETableSpecification

    sources = [[int(i)] for i in rng.choice(len(clusters), size=singles, replace=False)]
    sources += [[int(i), int(j)] for i, j in (rng.choice(len(clusters), size=2, replace=False) for _ in range(mixtures))]
    Z, B, X, Y = [], [], [], []
    for members in sources:
        parts = [world.sample(clusters[m], weights[m], rows // len(members), rng) for m in members]
        data = np.vstack([x for x, _ in parts])
        spec = RKMETableSpecification(gamma=GAMMA, device="cpu")
        spec.generate_stat_spec_from_data(data, K=SPEC_POINTS)
        Z.append(spec.get_z())
        B.append(spec.get_beta())
        X.append(data)
        Y.append(np.concatenate([y for _, y in parts]))
    return Users(np.stack(Z), np.stack(B), sources, X, Y)


def learnware_id(i: int) -> str:
    return f"lw{i:06d}"


# ----------------------------------------------------------------------------- ours


CHUNK = 10_000


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build_index(world: World, n: int, rng: np.random.Generator, keep_specs: bool) -> tuple[Any, float, float, list[np.ndarray], list[np.ndarray], np.ndarray | None, np.ndarray | None]:
    """A LearnwareIndex fed with one UPSERTED change per learnware (as from the organizer), made CHUNK
    learnwares at a time; the seconds spent applying changes (making them not counted), the
    process's memory growth per learnware, the learnwares' clusters and weights, and their
    specs Z, B when asked to keep them (else None)."""
    from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2
    from lwm.rpc.tensors import to_tensor
    from lwm.services.searcher.index import LearnwareIndex

    index = LearnwareIndex("cpu")
    semantic = common_pb2.SemanticSpec(data=["Table"], task=["Classification"], library=["Scikit-learn"], scenario=["Business"], license=["MIT"], name="bench")
    clusters: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    kept_Z, kept_B = [], []
    before = rss_bytes()
    applying = 0.0
    for start in range(0, n, CHUNK):
        chunk_clusters, chunk_weights, Z, B = world.learnwares(min(CHUNK, n - start), rng)
        clusters += chunk_clusters
        weights += chunk_weights
        if keep_specs:
            kept_Z.append(Z)
            kept_B.append(B)
        changes = []
        for j in range(len(Z)):
            i = start + j
            info = common_pb2.LearnwareInfo(id=learnware_id(i), status=common_pb2.LEARNWARE_STATUS_USABLE, semantic_spec=semantic, created_at=i)
            spec = common_pb2.StatSpec(type="RKMETableSpecification", z=to_tensor(Z[j]), beta=to_tensor(B[j]), gamma=GAMMA, num_points=1000)
            changes.append(organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_UPSERTED, revision=i + 1, learnware_id=info.id, learnware=info, stat_specs=[spec]))
        del Z, B
        started = time.perf_counter()
        for change in changes:
            index.apply(change)
        applying += time.perf_counter() - started
    started = time.perf_counter()
    index.apply(organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_SYNCED, revision=n))
    applying += time.perf_counter() - started
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed chunks' memory back to the system: the growth is what stays
    growth = (rss_bytes() - before) / n
    specs = (np.concatenate(kept_Z), np.concatenate(kept_B)) if keep_specs else (None, None)
    return index, applying, growth, clusters, weights, *specs


def update_cost(index: Any, n: int, repeats: int = 50) -> float:
    """Mean seconds to apply one change (a re-upload of an existing learnware, its spec as stored) to the built index."""
    from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2
    from lwm.rpc.tensors import to_tensor

    view = index.view(index.group_keys("RKMETableSpecification")[0], None)  # completes the rows of the backlog
    row_of = {learnware_id: row for row, learnware_id in enumerate(view.ids[: view.count])}
    changes = []
    for r in range(repeats):
        i = (r * 7919) % n
        row = row_of[learnware_id(i)]
        z, beta = view.points(row).numpy(), view.spec_weights(row).numpy()
        info = common_pb2.LearnwareInfo(id=learnware_id(i), status=common_pb2.LEARNWARE_STATUS_USABLE, semantic_spec=common_pb2.SemanticSpec(data=["Table"], name="bench"), created_at=i)
        spec = common_pb2.StatSpec(type="RKMETableSpecification", z=to_tensor(z), beta=to_tensor(beta), gamma=GAMMA)
        changes.append(organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_UPSERTED, revision=n + 1 + r, learnware_id=info.id, learnware=info, stat_specs=[spec]))
    started = time.perf_counter()
    for change in changes:
        index.apply(change)
    return (time.perf_counter() - started) / repeats


class OurSearcher:
    """A real searcher gRPC server over the index, with the given index settings."""

    def __init__(self, index: Any, settings: Any) -> None:
        from lwm.rpc.learnware.v1 import searcher_pb2, searcher_pb2_grpc
        from lwm.rpc.server import Server, channel
        from lwm.services.searcher.server import SearcherServicer

        self.server = Server("searcher", 0)
        self.server.add(searcher_pb2_grpc.add_SearcherServiceServicer_to_server, SearcherServicer(index, settings), [searcher_pb2.DESCRIPTOR.services_by_name["SearcherService"].full_name])
        self.server.start()
        self.channel = channel(self.server.address)
        self.stub = searcher_pb2_grpc.SearcherServiceStub(self.channel)

    def search(self, z: np.ndarray, beta: np.ndarray, strategy: str) -> tuple[float, list[str], list[str]]:
        """(seconds, single result ids, mixture ids)."""
        from lwm.rpc.learnware.v1 import common_pb2, searcher_pb2
        from lwm.rpc.tensors import to_tensor

        request = searcher_pb2.SearchLearnwaresRequest(
            stat_specs=[common_pb2.StatSpec(type="RKMETableSpecification", z=to_tensor(z), beta=to_tensor(beta), gamma=GAMMA)],
            max_search_num=MAX_SEARCH_NUM,
            mixture_strategy=searcher_pb2.MIXTURE_STRATEGY_AUTO if strategy == "auto" else searcher_pb2.MIXTURE_STRATEGY_GREEDY,
        )
        started = time.perf_counter()
        reply = self.stub.SearchLearnwares(request, timeout=600)
        elapsed = time.perf_counter() - started
        mixture = [lw.id for lw in reply.multiple_results[0].learnwares] if reply.multiple_results else []
        return elapsed, [r.learnware.id for r in reply.single_results], mixture

    def close(self) -> None:
        self.channel.close()
        self.server.stop(0)


def run_ours(searcher: OurSearcher, users: Users, strategies: tuple[str, ...]) -> dict[str, Any]:
    searcher.search(users.Z[0], users.B[0], "greedy")  # warm-up
    results: dict[str, Any] = {"latency": [], "singles": [], "mixtures": {s: [] for s in strategies}}
    for u in range(len(users.sources)):
        elapsed, singles, mixture = searcher.search(users.Z[u], users.B[u], "greedy")
        results["latency"].append(elapsed)
        results["singles"].append(singles)
        results["mixtures"]["greedy"].append(mixture)
        if len(users.sources[u]) == 2 and "auto" in strategies:
            results["mixtures"]["auto"].append(searcher.search(users.Z[u], users.B[u], "auto")[2])
        elif "auto" in strategies:
            results["mixtures"]["auto"].append([])
    return results


def certified_top1(index: Any, landmarks: np.ndarray, users: Users) -> tuple[list[str], float]:
    """Each user's learnware of least exact MMD among all stored specs, without computing them all.

    Projecting Phi_user - Phi_i onto the span of the kernel functions of a few landmark points
    c_j cannot lengthen it, so with v_j = mu_user(c_j) - mu_i(c_j) (mu: the kernel mean
    embedding as a function), v^T (K_cc + eps I)^-1 v <= MMD^2(user, i): a lower bound from
    a Nystrom embedding of every spec, computed once. Exact MMDs (the searcher's own
    float32 kernels on the stored specs) are then computed in increasing order of the bound
    until the bound exceeds the best exact MMD found: the argmin is that of exhaustive
    search. Returns the ids and the mean fraction of specs whose exact MMD was computed.
    """
    import torch

    from lwm.services.searcher.stack import EXACT_BLOCK_ROWS, centre_rows
    from lwm.services.searcher.statistical import UserSpec, exact_mmds

    view = index.view(index.group_keys("RKMETableSpecification")[0], None)
    centres = torch.as_tensor(landmarks, dtype=torch.float64) - view.origin
    kcc = torch.exp(-GAMMA * torch.cdist(centres, centres) ** 2)
    # W W^T = (K + eps I)^-1; eps bounds how much W magnifies rounding (the bound stays a bound).
    whitening = torch.linalg.cholesky(torch.linalg.inv(kcc + 1e-2 * torch.eye(len(centres), dtype=torch.float64)))
    embedding = torch.empty(view.count, len(centres), dtype=torch.float64)
    for start in range(0, view.count, EXACT_BLOCK_ROWS):
        rows = slice(start, min(start + EXACT_BLOCK_ROWS, view.count))
        points = centre_rows(view.stored_points[rows], view.offsets[rows], view.origin)  # (n, K, d) float64
        values = torch.exp(-GAMMA * torch.cdist(points.reshape(-1, points.shape[-1]), centres) ** 2).reshape(*points.shape[:2], -1)
        embedding[rows] = (view.weights[rows].to(torch.float64).unsqueeze(1) @ values).squeeze(1) @ whitening
    norms = (embedding**2).sum(1)
    alive = view.mask.numpy()
    slack = 1e-5  # float32 rounding of the exact MMDs, far above the bound's own
    found, computed = [], []
    for z, beta in zip(users.Z, users.B):
        user = UserSpec.make(z, beta, GAMMA, torch.device("cpu"))
        point = (torch.exp(-GAMMA * torch.cdist(centres, view.centred(user.z)) ** 2) @ user.beta) @ whitening
        bounds = np.where(alive, (norms - 2.0 * (embedding @ point) + float(point @ point)).numpy(), np.inf)
        order = np.argsort(bounds)
        best, best_row, done = np.inf, -1, 0
        while done < len(order) and bounds[order[done]] - slack <= best:
            batch = torch.as_tensor(order[done : done + EXACT_BLOCK_ROWS])
            batch = batch[torch.as_tensor(alive[batch.numpy()])]
            mmds = exact_mmds(user, view, batch).numpy()
            if len(mmds) and mmds.min() < best:
                best, best_row = float(mmds.min()), int(batch[int(np.argmin(mmds))])
            done += EXACT_BLOCK_ROWS
        found.append(view.ids[best_row])
        computed.append(min(done, len(order)) / int(alive.sum()))
    return found, float(np.mean(computed))


# ----------------------------------------------------------------------------- reference


def run_reference(Z: np.ndarray, B: np.ndarray, users: Users, strategies: tuple[str, ...], workdir: Path) -> dict[str, Any]:
    """The reference's EasyStatSearcher on the same specs and users, in its own venv."""
    python = ensure_reference_venv()
    data = workdir / "reference-input.npz"
    out = workdir / "reference-output.json"
    np.savez(data, Z=Z, B=B, user_Z=users.Z, user_B=users.B, mixture_users=np.array([len(s) == 2 for s in users.sources]))
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, HOME=home, CUDA_VISIBLE_DEVICES="", PYTHONPATH="")
        subprocess.run([str(python), __file__, "--reference-worker", str(data), str(out), "--strategies", ",".join(strategies)], check=True, env=env, cwd=home)
    return json.loads(out.read_text())


def reference_worker(data_path: str, out_path: str, strategies: list[str]) -> None:
    """Runs inside the reference's venv: build its Learnware objects, time its searcher."""
    import logging

    import torch
    from learnware.learnware import Learnware
    from learnware.market.base import BaseUserInfo
    from learnware.market.easy.searcher import EasyStatSearcher
    from learnware.specification import RKMETableSpecification, Specification

    logging.disable(logging.WARNING)
    data = dict(np.load(data_path))  # read each array once (an NpzFile re-reads on every access)

    def spec(z: np.ndarray, beta: np.ndarray) -> RKMETableSpecification:
        rkme = RKMETableSpecification(gamma=GAMMA, cuda_idx=-1)
        rkme.z = torch.tensor(z, dtype=torch.float64)  # copies, not views of the whole array
        rkme.beta = torch.tensor(beta, dtype=torch.float64)
        rkme.num_points = 1000
        return rkme

    learnwares = [
        Learnware(learnware_id(i), model={}, specification=Specification(stat_spec={"RKMETableSpecification": spec(data["Z"][i], data["B"][i])}), learnware_dirpath="")
        for i in range(len(data["Z"]))
    ]
    searcher = EasyStatSearcher(organizer=None)
    results: dict[str, Any] = {"latency": [], "singles": [], "mixtures": {s: [] for s in strategies}}
    for u in range(len(data["user_Z"])):
        user = BaseUserInfo(stat_info={"RKMETableSpecification": spec(data["user_Z"][u], data["user_B"][u])})
        started = time.perf_counter()
        found = searcher(learnwares, user, max_search_num=MAX_SEARCH_NUM, search_method="greedy")
        results["latency"].append(time.perf_counter() - started)
        results["singles"].append([item.learnware.id for item in found.get_single_results()])
        mixtures = found.get_multiple_results()
        results["mixtures"]["greedy"].append([lw.id for lw in mixtures[0].learnwares] if mixtures else [])
        if "auto" in strategies:
            auto = searcher(learnwares, user, max_search_num=MAX_SEARCH_NUM, search_method="auto").get_multiple_results() if data["mixture_users"][u] else []
            results["mixtures"]["auto"].append([lw.id for lw in auto[0].learnwares] if auto else [])
    Path(out_path).write_text(json.dumps(results))


# ----------------------------------------------------------------------------- report


def analyse_mixtures(world: World, clusters: list[np.ndarray], Z: np.ndarray, B: np.ndarray, users: Users, strategies: tuple[str, ...], runs: list[tuple[str, dict[str, Any] | None, list[int], int]]) -> None:
    """bench/mixture_analysis.py's table for the two-source users: each run (name, results, the users it served in order,
    its mixture pool size), ours' top-1 single alone, and ours on the users a run served only part of."""
    from mixture_analysis import HEADER, LEGEND, MixtureAnalysis, MixtureUser, report

    analysis = MixtureAnalysis(Z, B, clusters, world.centers, GAMMA)
    ours_name, ours, ours_served, ours_pool = runs[0]
    assert ours is not None
    prepared = {u: analysis.prepare(MixtureUser(users.Z[u], users.B[u], users.x[u], users.y[u], users.sources[u])) for u in ours_served if len(users.sources[u]) == 2}

    def index_of(learnware: str) -> int:
        return int(learnware.removeprefix("lw"))

    def rows(name: str, results: dict[str, Any], served: list[int], among: list[int], pool: int) -> None:
        position = {u: i for i, u in enumerate(served)}
        chosen = [u for u in among if u in prepared]
        for strategy in strategies:
            outcomes = [analysis.outcome(prepared[u], [index_of(m) for m in results["mixtures"][strategy][position[u]]], index_of(results["singles"][position[u]][0])) for u in chosen]
            print(report(f"{name} {strategy}", [prepared[u] for u in chosen], outcomes, pool), flush=True)

    print(LEGEND)
    print(HEADER)
    rows(ours_name, ours, ours_served, ours_served, ours_pool)
    top1 = [analysis.outcome(prepared[u], [], index_of(ours["singles"][i][0])) for i, u in enumerate(ours_served) if u in prepared]
    print(report(f"{ours_name} top-1 single", [prepared[u] for u in ours_served if u in prepared], top1, None), flush=True)
    for name, results, served, pool in runs[1:]:
        if results is None:
            continue
        rows(name, results, served, served, pool)
        if len(served) < len(ours_served):
            rows(f"{ours_name}, same users,", ours, ours_served, served, ours_pool)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def accuracy(results: dict[str, Any], sources: list[list[int]], strategies: tuple[str, ...]) -> dict[str, float]:
    singles = [(s, r) for s, r in zip(sources, results["singles"]) if len(s) == 1]
    out = {
        "top1": float(np.mean([bool(r) and r[0] == learnware_id(s[0]) for s, r in singles])) if singles else float("nan"),
        "top5": float(np.mean([learnware_id(s[0]) in r[:5] for s, r in singles])) if singles else float("nan"),
    }
    for strategy in strategies:
        mixed = [(s, m) for s, m in zip(sources, results["mixtures"][strategy]) if len(s) == 2]
        out[f"mixture recall ({strategy})"] = float(np.mean([{learnware_id(i) for i in s} <= set(m) for s, m in mixed])) if mixed else float("nan")
    return out


def report_row(name: str, results: dict[str, Any], sources: list[list[int]], strategies: tuple[str, ...]) -> str:
    lat = results["latency"]
    acc = accuracy(results, sources, strategies)
    cells = [f"{name:<24}", f"{len(lat):>5}", f"{percentile(lat, 50) * 1000:>9.1f}", f"{percentile(lat, 99) * 1000:>9.1f}", f"{acc['top1']:>6.3f}", f"{acc['top5']:>6.3f}"]
    cells += [f"{acc[f'mixture recall ({s})']:>13.3f}" for s in strategies]
    return " ".join(cells)


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1k and 10k learnwares, 40 users, reference at 1k only")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], help="market sizes (default 1000,10000,100000)")
    parser.add_argument("--users", type=int, help="users per size, half single-source, half two-source (default 200)")
    parser.add_argument("--reference-max", type=int, help="largest market the reference searches (default 10000)")
    parser.add_argument("--reference-users", type=int, help="users the reference serves above 1k learnwares (default 40)")
    parser.add_argument("--exhaustive-users", type=int, help="users searched exhaustively too, above 100k learnwares (default 20; all users at 100k and below)")
    parser.add_argument("--index", default="1000:20000", help="indexed searches' shortlist:coarse settings, comma-separated (one row each)")
    parser.add_argument("--analysis-max", type=int, default=10_000, help="largest market whose mixtures are analysed (fit to the user against the true pair's, reuse accuracy; bench/mixture_analysis.py); 0: none")
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--clusters", type=int, default=60)
    parser.add_argument("--spread", type=float, default=1.5, help="standard deviation of the cluster centres")
    parser.add_argument("--user-rows", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--strategies", default="greedy,auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    strategies = tuple(args.strategies.split(","))
    if args.reference_worker:
        reference_worker(*args.reference_worker, list(strategies))
        return

    import torch

    from lwm.services.searcher.statistical import IndexSettings, mixture_pool_size

    sizes = args.sizes or ([1000, 10000] if args.quick else [1000, 10000, 100000])
    users_per_size = args.users or (40 if args.quick else 200)
    reference_max = args.reference_max if args.reference_max is not None else (1000 if args.quick else 10000)
    reference_users = args.reference_users or (20 if args.quick else 40)
    world = World.make(args.clusters, args.dim, args.spread, args.seed)
    print(f"search bench: {args.clusters} clusters in {args.dim} dimensions (centre spread {args.spread}), specs of {SPEC_POINTS} points, gamma {GAMMA}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; {load()}")
    header = f"{'searcher':<24} {'users':>5} {'p50 ms':>9} {'p99 ms':>9} {'top1':>6} {'top5':>6} " + " ".join(f"{'mix ' + s:>13}" for s in strategies)

    with tempfile.TemporaryDirectory(prefix="lwm-search-bench-") as tmp:
        for n in sizes:
            rng = np.random.default_rng(args.seed * 1000 + n)
            started = time.perf_counter()
            index, build_s, growth, clusters, weights, Z, B = build_index(world, n, rng, keep_specs=n <= max(reference_max, args.analysis_max))
            made = time.perf_counter() - started - build_s
            users = make_users(world, clusters, weights, users_per_size // 2, users_per_size - users_per_size // 2, args.user_rows, rng)
            per_change = update_cost(index, n)
            stack_bytes = index.stats()[2]
            print(
                f"\n== {n} learnwares: specs made in {made:.1f} s; index built from {n} change events in {build_s:.1f} s ({build_s / n * 1e6:.0f} us a change); "
                f"index {stack_bytes / n:.0f} bytes a spec ({stack_bytes / 2**20:.0f} MiB), process memory +{growth:.0f} bytes a learnware; "
                f"one more change applied in {per_change * 1e3:.2f} ms; {load()}"
            )
            print(header)
            # Single- and two-source users alternate, so any prefix has both kinds.
            half = len(users.sources) // 2
            interleaved = [u for pair in zip(range(half), range(half, len(users.sources))) for u in pair]
            exhaustive_count = len(interleaved) if n <= 100_000 else (args.exhaustive_users if args.exhaustive_users is not None else 20)
            sampled = interleaved[:exhaustive_count]
            ours = {}
            runs = [(f"ours indexed {shortlist}:{coarse}", IndexSettings(min_rows=0, shortlist=int(shortlist), coarse=int(coarse)), interleaved) for shortlist, coarse in (pair.split(":") for pair in args.index.split(","))]
            if sampled:
                runs.append(("ours exhaustive", IndexSettings(min_rows=n + 1), sampled))
            for name, settings, served in runs:
                subset = users.subset(served)
                searcher = OurSearcher(index, settings)
                try:
                    ours[name] = run_ours(searcher, subset, strategies)
                finally:
                    searcher.close()
                print(report_row(name, ours[name], subset.sources, strategies), flush=True)
            started = time.perf_counter()
            exact, computed = certified_top1(index, world.centers, users)
            exact = [exact[u] for u in interleaved]
            print(f"{'':<24} exact top-1 of every user (bounded exhaustive search, {computed:.4f} of the exact MMDs computed) in {time.perf_counter() - started:.0f} s")
            if sampled:
                print(f"{'':<24} it equals the searcher's exhaustive top-1 for {np.mean([a[:1] == [b] for a, b in zip(ours['ours exhaustive']['singles'], exact)]):.3f} of {len(sampled)} users")
            for name, _, _ in runs[: len(runs) - bool(sampled)]:
                agree = np.mean([a[:1] == [b] for a, b in zip(ours[name]["singles"], exact)])
                print(f"{'':<24} {name}: top-1 equals exhaustive top-1 for {agree:.3f} of {len(interleaved)} users ({load()})")
            reference, reference_served = None, []
            if Z is not None and B is not None and n <= reference_max:
                # Above 1k the reference serves the first users only, single- and two-source alike.
                served = reference_served = interleaved[: len(users.sources) if n <= 1000 else reference_users]
                subset = users.subset(served)
                reference = run_reference(Z, B, subset, strategies, Path(tmp))
                print(report_row("reference (learnware 0.4)", reference, subset.sources, strategies), flush=True)
                if len(served) < len(users.sources):
                    # The exhaustive run served `sampled` (a prefix of `interleaved`, as `served` is) in that order.
                    position = {u: i for i, u in enumerate(sampled)}
                    same_users = {key: [ours["ours exhaustive"][key][position[u]] for u in served] for key in ("latency", "singles")}
                    same_users["mixtures"] = {s: [ours["ours exhaustive"]["mixtures"][s][position[u]] for u in served] for s in strategies}
                    print(report_row("ours exh., same users", same_users, subset.sources, strategies), flush=True)
            if Z is not None and B is not None and n <= args.analysis_max and "ours exhaustive" in ours:
                started = time.perf_counter()
                print()
                analyse_mixtures(world, clusters, Z, B, users, strategies, [("ours", ours["ours exhaustive"], sampled, mixture_pool_size(MAX_SEARCH_NUM)), ("reference", reference, reference_served, MAX_SEARCH_NUM**2)])
                print(f"{'':<34} (analysis took {time.perf_counter() - started:.0f} s; {load()})", flush=True)
            del index

if __name__ == "__main__":
    main()
