"""Does a larger mixture pool bring the true pair back? Ours' mixture search in process, pool 100 (the searcher's) and larger.

    .venv/bin/python bench/mixture_pool_bench.py [--size 10000] [--users 200] [--pools 100,400]

The same market and users as bench/search_bench.py at that size (same seed, same draws).
For each two-source user the searcher's own find_mixture (lwm.services.searcher.statistical)
runs on the best `pool` learnwares by exact single MMD (float64, bench/mixture_analysis.py),
greedy and auto, and the found mixture is compared with the true pair as in search_bench's
analysis: hit (both sources in it), miss with the mixture's MMD^2 to the user at most the
true pair's (a <= b), or above it (a > b); and the mean accuracy of reusing it on the
user's labels (mixture_analysis.reuse_accuracy). search_bench.py goes through a real searcher
server with float32 kernels; at pool 100 this gives the same counts (checked at 10k).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from mixture_analysis import mixture_fit, reuse_accuracy, self_terms_of, single_mmds
from search_bench import GAMMA, MAX_SEARCH_NUM, World, load, make_users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000, help="learnwares in the market (search_bench's sizes draw the same market)")
    parser.add_argument("--users", type=int, default=200, help="users, half of them two-source (search_bench's --users)")
    parser.add_argument("--pools", type=lambda s: [int(x) for x in s.split(",")], default=[100, 400])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from lwm.services.searcher.statistical import UserSpec, find_mixture

    world = World.make(60, 16, 1.5, args.seed)
    rng = np.random.default_rng(args.seed * 1000 + args.size)  # as search_bench: its build_index draws the market in chunks of 10,000
    clusters: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    Z_parts, B_parts = [], []
    for start in range(0, args.size, 10_000):
        chunk_clusters, chunk_weights, Z_chunk, B_chunk = world.learnwares(min(10_000, args.size - start), rng)
        clusters += chunk_clusters
        weights += chunk_weights
        Z_parts.append(Z_chunk)
        B_parts.append(B_chunk)
    Z, B = np.concatenate(Z_parts), np.concatenate(B_parts)
    users = make_users(world, clusters, weights, args.users // 2, args.users - args.users // 2, 400, rng)
    self_terms = self_terms_of(Z, B, GAMMA)
    print(f"{args.size} learnwares, {args.users - args.users // 2} two-source users; {load()}; {os.cpu_count()} CPUs")
    counts = {(strategy, pool): [0, 0, 0] for pool in args.pools for strategy in ("greedy", "auto")}
    accuracies: dict[tuple[str, int], list[float]] = {config: [] for config in counts}
    for u, sources in enumerate(users.sources):
        if len(sources) != 2:
            continue
        mmds = single_mmds(Z, B, self_terms, users.Z[u], users.B[u], GAMMA)
        order = np.argsort(mmds)
        pair_mmd = mixture_fit(sources, Z, B, users.Z[u], users.B[u], GAMMA)[1]
        user = UserSpec.make(users.Z[u], users.B[u], GAMMA, torch.device("cpu"))
        for (strategy, pool), count in counts.items():
            rows = order[:pool]
            mixture = find_mixture(user, torch.from_numpy(Z[rows]), torch.from_numpy(B[rows]), self_terms[rows], mmds[rows], max_search_num=MAX_SEARCH_NUM, strategy=strategy)
            # As the searcher's finish(): a mixture no closer than the best single is not returned; the user has the top-1.
            members = [int(rows[m]) for m in mixture.members] if mixture and mixture.mmd < mmds[order[0]] else [int(order[0])]
            accuracies[strategy, pool].append(reuse_accuracy(members, Z, B, clusters, world.centers, users.Z[u], users.B[u], users.x[u], users.y[u], GAMMA))
            if set(sources) <= set(members):
                count[0] += 1
            else:
                count[1 if mixture_fit(members, Z, B, users.Z[u], users.B[u], GAMMA)[1] <= pair_mmd else 2] += 1
    print(f"{'strategy':<8} {'pool':>5} {'recall':>6} {'miss a<=b':>9} {'miss a>b':>8} {'reuse acc':>9}")
    for (strategy, pool), (hits, better, worse) in counts.items():
        print(f"{strategy:<8} {pool:>5} {hits / (hits + better + worse):>6.2f} {better:>9} {worse:>8} {np.mean(accuracies[strategy, pool]):>9.3f}")
    print(load())


if __name__ == "__main__":
    main()
