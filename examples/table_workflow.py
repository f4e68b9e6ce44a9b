"""A homogeneous table market: learnwares over the same 10 features, each trained on its own region of the data.

    python examples/table_workflow.py [--work-dir DIR]

Starts `lwm serve --all` as a child process, builds 6 classification learnwares from a
synthetic TableWorld (scikit-learn LogisticRegression models, RKME table specifications),
uploads them (the market checks each one in its sandbox; all must become USABLE), then
plays a user whose rows come from two regions and who has labelled a few of them:

1. search with the RKME specification of the user's rows (made locally; the rows stay here),
2. reuse what was found on the market: JobSelector (each row to the learnware whose
   specification fits it), EnsemblePruning and FeatureAugment (with the labelled rows),
3. compare with a model trained on the labelled rows alone,
4. run the top learnware in a local sandbox (load_learnware) and check it agrees with the market.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from _market import ROOT, fresh_work_dir, running_market, section
from sklearn.linear_model import LogisticRegression

from lwm.client import MarketClient
from lwm.client.cli import print_search
from lwm.spec import RKMETableSpecification
from lwm.testing.synthetic import TableWorld

TASKS = 6
USER_REGIONS = [2, 5]
USER_ROWS = 800
LABELLED_ROWS = 60


def accuracy(scores_or_labels: np.ndarray, y: np.ndarray) -> float:
    labels = scores_or_labels.argmax(axis=1) if scores_or_labels.ndim == 2 and scores_or_labels.shape[1] > 1 else scores_or_labels.reshape(-1)
    return float((labels == y).mean())


def main() -> int:
    work_dir = fresh_work_dir(__doc__, ROOT / ".lwm-examples" / "table")
    world = TableWorld.make(tasks=TASKS, dim=10, n_classes=3, seed=7)
    with running_market(work_dir) as market, MarketClient(market.address) as client:
        section(f"building and uploading {TASKS} table learnwares (each checked in the sandbox)")
        region_of: dict[str, int] = {}
        for task in range(TASKS):
            zip_path, semantic = world.write_learnware(task, work_dir / "zips")
            learnware = client.add_learnware(zip_path, semantic, wait=True)
            print(f"  {learnware.id}  {learnware.status:<8} {learnware.name}  (region {task})")
            if learnware.status != "USABLE":
                print(f"learnware of region {task} is {learnware.status}: {learnware.check_report}")
                return 1
            region_of[learnware.id] = task

        section(f"the user's rows come from regions {USER_REGIONS}; {LABELLED_ROWS} of them are labelled")
        rng = np.random.default_rng(2024)
        x_user, y_user = world.sample_mixture(USER_REGIONS, USER_ROWS, rng)
        labelled = rng.choice(len(x_user), size=LABELLED_ROWS, replace=False)
        user_spec = RKMETableSpecification()
        user_spec.generate_stat_spec_from_data(x_user)
        results = client.search_learnware({"Data": {"Values": ["Table"], "Type": "Class"}, "Task": {"Values": ["Classification"], "Type": "Class"}}, user_spec)
        print_search(results)
        mixtures = results.get_multiple_results()
        found = [lw.id for lw in mixtures[0].learnwares] if mixtures else [results.get_single_results()[0].learnware.id]
        print(f"found regions {sorted(region_of[i] for i in found)} (the user's: {USER_REGIONS})")

        section("reuse on the market")
        top = results.get_single_results()[0].learnware
        print(f"top-1 learnware alone ({top.name}): accuracy {accuracy(client.predict(top.id, x_user), y_user):.3f}")
        routed = client.reuse(found, x_user, "job_selector", user_spec=user_spec).predictions
        print(f"JobSelectorReuser over the found learnwares: accuracy {accuracy(routed, y_user):.3f}")
        x_train, y_train = x_user[labelled], y_user[labelled]
        for method in ("ensemble_pruning", "feature_augment"):
            all_learnwares = sorted(region_of)
            predictions = client.reuse(all_learnwares, x_user, method, task="classification", train_x=x_train, train_y=y_train).predictions
            print(f"{method} over all {TASKS} learnwares with {LABELLED_ROWS} labels: accuracy {accuracy(predictions, y_user):.3f}")
        own = LogisticRegression(max_iter=1000).fit(x_train, y_train)
        print(f"a model trained on the {LABELLED_ROWS} labelled rows alone: accuracy {accuracy(own.predict(x_user), y_user):.3f}")

        section(f"the top learnware run locally in a sandbox (load_learnware {top.id})")
        with client.load_learnware(top.id) as local:
            agrees = np.allclose(local.predict(x_user), client.predict(top.id, x_user))
        print(f"local predictions {'agree' if agrees else 'DIFFER'} with the market's")
    return 0 if agrees else 1


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"table workflow finished in {time.perf_counter() - started:.1f} s")
    sys.exit(code)
