"""A hetero table market: learnwares over different columns of the same data, a user with columns of their own.

    python examples/hetero_workflow.py [--work-dir DIR]

Starts a Hetero market (`lwm serve --all` with LWM_MARKET_KIND=hetero) as a child process,
builds 3 classification learnwares from scikit-learn's bundled breast cancer data
(lwm.testing.hetero_world: each learnware trained on its own region of the rows, on its
own subset of the columns in its own order, with its own column descriptions), uploads
them (each checked in its sandbox; the market then trains its hetero engine on their
specifications), then plays a user of region 1 whose table has other columns, in another
order, described in other words:

1. search in hetero mode with the user's column descriptions and the RKME specification
   of their rows (made locally; the rows stay here),
2. reuse the top learnware on the user's columns with hetero alignment, without labels and
   with a few labelled rows, against a model trained on those labelled rows alone,
3. align the same learnware locally (load_learnware runs it in a sandbox) and check that it
   agrees with the market.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from _market import ROOT, fresh_work_dir, running_market, section
from sklearn.linear_model import LogisticRegression

from lwm.client import MarketClient, MarketError, SearchResults
from lwm.client.cli import print_search
from lwm.client.reuse import HeteroMapAlignLearnware
from lwm.spec import RKMETableSpecification
from lwm.testing.hetero_world import HeteroTableWorld

TASKS = 3
USER_TASK = 1
LABELLED_ROWS = 50
ENGINE_TIMEOUT_S = 300.0


def accuracy(scores_or_labels: np.ndarray, y: np.ndarray) -> float:
    labels = scores_or_labels.argmax(axis=1) if scores_or_labels.ndim == 2 else scores_or_labels.reshape(-1)
    return float((labels == y).mean())


def hetero_search(client: MarketClient, semantic: dict, spec: RKMETableSpecification) -> SearchResults:
    """The hetero search's results, once the market's engine has trained on the uploaded learnwares."""
    deadline = time.monotonic() + ENGINE_TIMEOUT_S
    while True:
        try:
            results = client.search_learnware(semantic, spec)
            if not any("homogeneous search instead" in message for message in results.messages):
                return results
            state = results.messages[0]
        except MarketError as error:  # the engine is still training
            state = error.message
        if time.monotonic() > deadline:
            raise TimeoutError(f"no hetero search after {ENGINE_TIMEOUT_S:.0f} s: {state}")
        print(f"  waiting for the hetero engine: {state}", flush=True)
        time.sleep(3.0)


def main() -> int:
    work_dir = fresh_work_dir(__doc__, ROOT / ".lwm-examples" / "hetero")
    world = HeteroTableWorld.make("breast_cancer", tasks=TASKS, user_fraction=0.6, seed=3)
    os.environ["LWM_MARKET_KIND"] = "hetero"  # the market child process inherits these
    os.environ["LWM_HETERO_MIN_LEARNWARES"] = str(TASKS)
    with running_market(work_dir) as market, MarketClient(market.address) as client:
        section(f"building and uploading {TASKS} learnwares, each over its own columns (checked in the sandbox)")
        task_of: dict[str, int] = {}
        for task in range(TASKS):
            zip_path, semantic = world.write_learnware(task, work_dir / "zips")
            learnware = client.add_learnware(zip_path, semantic, wait=True)
            columns = world.learnware_table(task).descriptions
            print(f"  {learnware.id}  {learnware.status:<8} region {task}: {len(columns)} columns ({'; '.join(columns[:3])}; ...)")
            if learnware.status != "USABLE":
                print(f"learnware of region {task} is {learnware.status}: {learnware.check_report}")
                return 1
            task_of[learnware.id] = task

        user = world.user_table(USER_TASK)
        semantic = world.user_semantic_spec(user)
        section(f"the user (region {USER_TASK}): {len(user.y)} rows, {len(user.descriptions)} columns of their own ({'; '.join(user.descriptions[:3])}; ...)")
        shared = len(set(user.columns) & set(world.learnware_columns[USER_TASK]))
        print(f"  (unknown to the user: {shared} of their columns are also among region {USER_TASK}'s learnware's {len(world.learnware_columns[USER_TASK])})")
        user_spec = RKMETableSpecification()
        user_spec.generate_stat_spec_from_data(user.x)
        results = hetero_search(client, semantic, user_spec)
        print_search(results)
        top = results.get_single_results()[0].learnware
        print(f"top-1: region {task_of[top.id]} (the user's: {USER_TASK})")

        section("hetero reuse of the top learnware on the user's columns")
        rng = np.random.default_rng(0)
        order = rng.permutation(len(user.y))
        labelled, test = order[:LABELLED_ROWS], order[LABELLED_ROWS:]
        aligned = client.reuse([top.id], user.x[test], "hetero_align", task="classification", user_semantic_spec=semantic)
        print(f"  {aligned.messages[0]}")
        print(f"hetero_align without labels: accuracy {accuracy(aligned.predictions, user.y[test]):.3f}")
        tuned = client.reuse([top.id], user.x[test], "hetero_align", task="classification", train_x=user.x[labelled], train_y=user.y[labelled], user_semantic_spec=semantic)
        print(f"hetero_align with {LABELLED_ROWS} labelled rows: accuracy {accuracy(tuned.predictions, user.y[test]):.3f}")
        own = LogisticRegression(max_iter=1000).fit(user.x[labelled], user.y[labelled])
        print(f"a model trained on the {LABELLED_ROWS} labelled rows alone: accuracy {accuracy(own.predict(user.x[test]), user.y[test]):.3f}")

        section(f"the same alignment locally (load_learnware {top.id}, sandboxed)")
        with client.load_learnware(top.id) as local:
            aligned_locally = HeteroMapAlignLearnware(local, "classification", semantic)
            aligned_locally.align(user.x[test])
            agrees = np.allclose(aligned_locally.predict(user.x[test]), aligned.predictions)
        print(f"local aligned predictions {'agree' if agrees else 'DIFFER'} with the market's")
    return 0 if agrees else 1


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"hetero workflow finished in {time.perf_counter() - started:.1f} s")
    sys.exit(code)
