"""The market end to end on this machine (`make demo`).

Starts `lwm serve --all` (SQLite + directory object store under ./.lwm-demo/), builds
example table learnwares (scikit-learn models, RKME specs, zips), uploads them, runs a
semantic search, a statistical search and a reuse for a user's data, prints the
results and stops the market.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from _market import ROOT, fresh_work_dir, running_market, section

from lwm.client import MarketClient
from lwm.client.cli import print_search
from lwm.spec import RKMETableSpecification
from lwm.testing.synthetic import TableWorld

TASKS = 6


def main() -> int:
    work_dir = fresh_work_dir(__doc__, ROOT / ".lwm-demo")
    with running_market(work_dir) as market:
        world = TableWorld.make(tasks=TASKS)
        client = MarketClient(market.address)

        section(f"building and uploading {TASKS} table learnwares")
        for task in range(TASKS):
            zip_path, semantic = world.write_learnware(task, work_dir / "zips")
            learnware = client.add_learnware(zip_path, semantic, wait=True)
            print(f"  {learnware.id}  {learnware.status:<8} {learnware.name}  ({zip_path.stat().st_size // 1024} KiB)")

        section("semantic search: Table / Classification / Scenario=Health")
        results = client.search_learnware({"Data": {"Values": ["Table"], "Type": "Class"}, "Task": {"Values": ["Classification"], "Type": "Class"}, "Scenario": {"Values": ["Health"], "Type": "Tag"}})
        print_search(results)

        rng = np.random.default_rng(42)
        section("statistical search: a user whose data come from region 2")
        x_user, y_user = world.sample(2, 400, rng)
        user_spec = RKMETableSpecification()
        user_spec.generate_stat_spec_from_data(x_user)
        results = client.search_learnware({"Data": {"Values": ["Table"], "Type": "Class"}}, user_spec)
        print_search(results)
        best = results.get_single_results()[0].learnware
        accuracy = float((client.predict(best.id, x_user).argmax(axis=1) == y_user).mean())
        print(f"top-1 learnware {best.id} ({best.name}) on the user's data: accuracy {accuracy:.3f}")

        section("statistical search + reuse: a user whose data mix regions 1 and 4")
        x_mix, y_mix = world.sample_mixture([1, 4], 600, rng)
        mix_spec = RKMETableSpecification()
        mix_spec.generate_stat_spec_from_data(x_mix)
        results = client.search_learnware({}, mix_spec)
        print_search(results)
        mixtures = results.get_multiple_results()
        chosen = [lw.id for lw in mixtures[0].learnwares] if mixtures else [results.get_single_results()[0].learnware.id]
        probabilities = client.reuse_averaging(chosen, x_mix, mode="vote_by_prob")
        reuse_accuracy = float((probabilities.argmax(axis=1) == y_mix).mean())
        single_accuracy = float((client.predict(results.get_single_results()[0].learnware.id, x_mix).argmax(axis=1) == y_mix).mean())
        print(f"AveragingReuser(vote_by_prob) over {chosen}: accuracy {reuse_accuracy:.3f} on the user's labels (best single learnware alone: {single_accuracy:.3f})")
        routed = client.reuse(chosen, x_mix, "job_selector").predictions
        print(f"JobSelectorReuser over {chosen} (each row routed to one learnware): accuracy {float((routed.argmax(axis=1) == y_mix).mean()):.3f}")

        section("market info")
        print(client.market_info())
        client.close()
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"demo finished in {time.perf_counter() - started:.1f} s")
    sys.exit(code)
