"""Reuse side by side with the reference `learnware` package.

    .venv/bin/python bench/reuse_bench.py            # quick: 40-learnware markets, 4 users per task (minutes)
    .venv/bin/python bench/reuse_bench.py --full     # 1,000-learnware markets, 10 users per task, the
                                                     # reference's default JobSelector (herding 1,000): hours

World: lwm.testing.synthetic.TableWorld, as the demo and the search tests use it, once
for classification (3 classes) and once for regression: every learnware is a real
scikit-learn model trained on its own region of feature space, with its RKME spec, in a
real learnware zip. Regions overlap (separation 1.5), so routing rows to the right
learnware is not trivial. A user draws rows from one learnware's region or half from
each of two; the learnwares reused are the 5 nearest to the user's RKME spec by MMD
(what a 5-learnware mixture search returns), the top-1 is the nearest one.

Ours: lwm.client.reuse (the reusers the reuse service runs) on the zips loaded with
load_learnware, so every model runs in a sandboxed runner process (warm: the runner
start is not timed). Reference: learnware 0.4 in its own venv (.bench-venv, created when
missing) in a subprocess of this run, models in its process, on the same zips and rows.
Printed per method: accuracy (classification) or RMSE (regression), mean over users,
and the median time per user (fit + predict for the data-dependent reusers).
Two things of the reference do not run as published on Python 3.11 / scikit-learn 1.9:
its EnsemblePruningReuser needs geatpy (no Python 3.11 build), so it is reported n/a;
its FeatureAugmentReuser passes arguments scikit-learn removed (RidgeCV store_cv_values,
LogisticRegressionCV multi_class="auto"), which the worker drops: both only kept
defaults or diagnostics, so the reference's method is unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from reference_venv import ensure_reference_venv

# As `lwm serve` (services/market/lwm/services/market/launch.py): OpenMP threads sleep instead of spinning between kernels.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = 5
LABELLED_SIZES = (50, 100, 500)
TASKS = ("classification", "regression")


@dataclass
class User:
    sources: list[int]
    x: np.ndarray
    y: np.ndarray
    x_labelled: np.ndarray
    y_labelled: np.ndarray
    candidates: list[int] = field(default_factory=list)  # nearest learnwares first


def methods() -> list[str]:
    names = ["top-1", "JobSelector", "Averaging"]
    names += [f"EnsemblePruning ({n})" for n in LABELLED_SIZES]
    names += [f"FeatureAugment ({n})" for n in LABELLED_SIZES]
    return names


def score(task: str, predictions: np.ndarray, y: np.ndarray) -> float:
    """Accuracy (class scores are argmax-ed) or RMSE."""
    predictions = np.asarray(predictions)
    if task == "classification":
        labels = predictions.argmax(axis=1) if predictions.ndim == 2 and predictions.shape[1] > 1 else predictions.reshape(-1)
        return float(np.mean(labels.astype(np.int64) == y))
    return float(np.sqrt(np.mean((predictions.reshape(-1) - y) ** 2)))


# ----------------------------------------------------------------------------- market and users


def build_market(task: str, size: int, dim: int, separation: float, folder: Path) -> tuple[Any, list[Path], Any, Any]:
    """The world, its learnware zips and their specs stacked as Z (size, K, d), B (size, K)."""
    import torch

    from lwm.learnware.archive import LearnwareArchive
    from lwm.spec import RKMETableSpecification
    from lwm.testing.synthetic import TableWorld

    world = TableWorld.make(tasks=size, dim=dim, separation=separation, seed=11 if task == "classification" else 12, task=task)
    zips, specs = [], []
    for t in range(size):
        zip_path, _ = world.write_learnware(t, folder, n_train=600)
        zips.append(zip_path)
        specs.append(RKMETableSpecification.from_dict(LearnwareArchive.from_path(zip_path).stat_spec_json(), device="cpu"))
    k = max(s.z.shape[0] for s in specs)
    Z = torch.zeros(size, k, dim, dtype=torch.float64)
    B = torch.zeros(size, k, dtype=torch.float64)
    for i, s in enumerate(specs):
        Z[i, : s.z.shape[0]] = s.z
        B[i, : s.beta.shape[0]] = s.beta
    return world, zips, Z, B


def make_users(world: Any, count: int, rows: int, Z: Any, B: Any, seed: int) -> list[User]:
    """Half the users from one learnware's region, half from two; candidates by MMD to their spec."""
    import torch

    from lwm.spec import RKMETableSpecification, mmd_to_many

    rng = np.random.default_rng(seed)
    users = []
    for u in range(count):
        sources = [int(s) for s in rng.choice(len(world.centers), size=1 + u % 2, replace=False)]
        x, y = world.sample_mixture(sources, rows, rng)
        x_labelled, y_labelled = world.sample_mixture(sources, max(LABELLED_SIZES), rng)
        order = rng.permutation(len(y_labelled))  # the first n labelled rows mix the sources too
        user = User(sources, x, y, x_labelled[order], y_labelled[order])
        spec = RKMETableSpecification(device="cpu")
        spec.generate_stat_spec_from_data(x)
        distances = mmd_to_many(spec.z, spec.beta, Z, B, spec.gamma)
        user.candidates = torch.argsort(distances)[:CANDIDATES].tolist()
        users.append(user)
    return users


# ----------------------------------------------------------------------------- ours


def run_ours(task: str, zips: list[Path], users: list[User]) -> dict[str, list[tuple[float, float]]]:
    """(score, seconds) per method and user."""
    from lwm.client.reuse import AveragingReuser, EnsemblePruningReuser, FeatureAugmentReuser, JobSelectorReuser, load_learnware

    results: dict[str, list[tuple[float, float]]] = {m: [] for m in methods()}
    for user in users:
        learnwares = [load_learnware(zips[i], f"lw{i}") for i in user.candidates]
        try:
            for learnware in learnwares:  # warm: the first call of a fresh process imports the model's libraries
                learnware.predict(user.x[:5])

            def timed(method: str, run: Any) -> None:
                started = time.perf_counter()
                predictions = run()
                results[method].append((score(task, predictions, user.y), time.perf_counter() - started))

            timed("top-1", lambda: learnwares[0].predict(user.x))
            timed("JobSelector", lambda: JobSelectorReuser(learnwares).predict(user.x))
            timed("Averaging", lambda: AveragingReuser(learnwares, "vote_by_prob" if task == "classification" else "mean").predict(user.x))
            for n in LABELLED_SIZES:
                for name, cls in (("EnsemblePruning", EnsemblePruningReuser), ("FeatureAugment", FeatureAugmentReuser)):

                    def fit_predict(cls: Any = cls, n: int = n) -> np.ndarray:
                        reuser = cls(learnwares, task)
                        reuser.fit(user.x_labelled[:n], user.y_labelled[:n])
                        return reuser.predict(user.x)

                    timed(f"{name} ({n})", fit_predict)
        finally:
            for learnware in learnwares:
                learnware.close()
    return results


# ----------------------------------------------------------------------------- reference


def run_reference(task: str, zips: list[Path], users: list[User], herding_num: int, workdir: Path) -> dict[str, Any]:
    python = ensure_reference_venv()
    data = workdir / f"reference-{task}.npz"
    out = workdir / f"reference-{task}.json"
    arrays = {}
    for u, user in enumerate(users):
        arrays.update({f"x{u}": user.x, f"xl{u}": user.x_labelled, f"yl{u}": user.y_labelled})
    np.savez(data, **arrays)
    job = {"task": task, "herding_num": herding_num, "users": [[str(zips[i]) for i in user.candidates] for user in users], "data": str(data), "out": str(out)}
    (workdir / "job.json").write_text(json.dumps(job))
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, HOME=home, CUDA_VISIBLE_DEVICES="", PYTHONPATH="")
        subprocess.run([str(python), __file__, "--reference-worker", str(workdir / "job.json")], check=True, env=env, cwd=home)
    raw = json.loads(out.read_text())
    predictions = np.load(str(out) + ".npz")
    results: dict[str, Any] = {}
    for method in methods():
        if method in raw["unavailable"]:
            results[method] = raw["unavailable"][method]
            continue
        results[method] = [(score(task, predictions[f"{method}/{u}"], user.y), raw["seconds"][method][u]) for u, user in enumerate(users)]
    return results


def reference_worker(job_path: str) -> None:
    """Runs inside the reference's venv: its Learnware objects and reusers on the same zips and rows."""
    import json as json_module
    import logging
    import zipfile

    import sklearn.linear_model
    from learnware.learnware import get_learnware_from_dirpath
    from learnware.reuse import AveragingReuser, EnsemblePruningReuser, FeatureAugmentReuser, JobSelectorReuser, feature_augment

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")

    # store_cv_values (diagnostics only) is gone from scikit-learn; multi_class="auto" was its default.
    feature_augment.RidgeCV = lambda alphas, store_cv_values=False: sklearn.linear_model.RidgeCV(alphas=alphas)
    feature_augment.LogisticRegressionCV = lambda multi_class="auto", **kwargs: sklearn.linear_model.LogisticRegressionCV(**kwargs)

    job = json_module.loads(Path(job_path).read_text())
    task = job["task"]
    data = np.load(job["data"])
    seconds: dict[str, list[float]] = {m: [] for m in methods()}
    unavailable: dict[str, str] = {}
    predictions: dict[str, np.ndarray] = {}
    cache: dict[str, Any] = {}

    def learnware(zip_path: str) -> Any:
        if zip_path not in cache:
            folder = tempfile.mkdtemp(prefix="ref-learnware-")
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(folder)
            semantic = json_module.loads((Path(folder) / "semantic_specification.json").read_text())
            loaded = get_learnware_from_dirpath(Path(zip_path).stem, semantic, folder, ignore_error=False)
            loaded.instantiate_model()
            cache[zip_path] = loaded
        return cache[zip_path]

    for u, zip_paths in enumerate(job["users"]):
        learnwares = [learnware(p) for p in zip_paths]
        x, x_labelled, y_labelled = data[f"x{u}"], data[f"xl{u}"], data[f"yl{u}"]
        for loaded in learnwares:  # warm, as ours
            loaded.predict(x[:5])

        def timed(method: str, run: Any) -> None:
            if method in unavailable:
                return
            started = time.perf_counter()
            try:
                out = run()
            except (ModuleNotFoundError, ImportError) as error:
                unavailable[method] = "n/a: " + str(error).split(" is not available because ")[-1].split("!")[0]
                return
            seconds[method].append(time.perf_counter() - started)
            predictions[f"{method}/{u}"] = np.asarray(out)

        timed("top-1", lambda: learnwares[0].predict(x))
        timed("JobSelector", lambda: JobSelectorReuser(learnwares, herding_num=job["herding_num"]).predict(x))
        timed("Averaging", lambda: AveragingReuser(learnwares, mode="vote_by_prob" if task == "classification" else "mean").predict(x))
        for n in LABELLED_SIZES:

            def pruning(n: int = n) -> np.ndarray:
                reuser = EnsemblePruningReuser(learnwares, mode=task)
                reuser.fit(x_labelled[:n], y_labelled[:n])
                return reuser.predict(x)

            def augment(n: int = n) -> np.ndarray:
                reuser = FeatureAugmentReuser(learnwares, mode=task)
                reuser.fit(x_labelled[:n].copy(), y_labelled[:n])
                return reuser.predict(x.copy())

            timed(f"EnsemblePruning ({n})", pruning)
            timed(f"FeatureAugment ({n})", augment)
    np.savez(job["out"] + ".npz", **predictions)
    Path(job["out"]).write_text(json_module.dumps({"seconds": seconds, "unavailable": unavailable}))


# ----------------------------------------------------------------------------- report


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def cell(results: Any) -> tuple[str, str]:
    if isinstance(results, str):
        return results[:38], ""
    scores, seconds = zip(*results)
    return f"{np.mean(scores):.4f}", f"{np.median(seconds) * 1000:.0f} ms"


def report(task: str, ours: dict[str, Any], reference: dict[str, Any], herding_num: int) -> None:
    metric = "accuracy" if task == "classification" else "RMSE"
    print(f"\n{task}: {metric} (mean over users) and time per user (median); reference JobSelector herding_num={herding_num}  ({load()})")
    print(f"{'method':<22} {'ours ' + metric:>14} {'ours time':>11}   {'reference ' + metric:>38} {'reference time':>14}")
    for method in methods():
        ours_score, ours_time = cell(ours[method])
        ref_score, ref_time = cell(reference[method])
        print(f"{method:<22} {ours_score:>14} {ours_time:>11}   {ref_score:>38} {ref_time:>14}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="1,000-learnware markets, 10 users per task, reference herding 1,000")
    parser.add_argument("--quick", action="store_true", help="the default: 40-learnware markets, 4 users per task, reference herding 200")
    parser.add_argument("--learnwares", type=int, help="learnwares per market")
    parser.add_argument("--users", type=int, help="users per task (half from one learnware's region, half from two)")
    parser.add_argument("--herding", type=int, help="the reference JobSelector's herding_num (its default is 1000)")
    parser.add_argument("--rows", type=int, default=1000, help="rows each user predicts")
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--separation", type=float, default=1.5, help="spread of the regions' centres (TableWorld)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="classification,regression")
    parser.add_argument("--reference-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn's notes on coming defaults
    if args.reference_worker:
        reference_worker(args.reference_worker)
        return
    size = args.learnwares or (1000 if args.full else 40)
    count = args.users or (10 if args.full else 4)
    herding_num = args.herding or (1000 if args.full else 200)
    print(f"reuse bench: {size} learnwares per market, {count} users per task, {args.rows} rows each, dim {args.dim}, {CANDIDATES} candidates per user ({load()})", flush=True)
    with tempfile.TemporaryDirectory(prefix="lwm-reuse-bench-") as tmp:
        for task in args.tasks.split(","):
            started = time.perf_counter()
            world, zips, Z, B = build_market(task, size, args.dim, args.separation, Path(tmp) / task)
            users = make_users(world, count, args.rows, Z, B, seed=5)
            found = np.mean([set(u.sources) <= set(u.candidates) for u in users])
            print(f"{task}: market built in {time.perf_counter() - started:.0f} s; the user's source learnwares are among the {CANDIDATES} candidates for {found:.2f} of users", flush=True)
            started = time.perf_counter()
            ours = run_ours(task, zips, users)
            print(f"{task}: ours done in {time.perf_counter() - started:.0f} s", flush=True)
            started = time.perf_counter()
            reference = run_reference(task, zips, users, herding_num, Path(tmp))
            print(f"{task}: reference done in {time.perf_counter() - started:.0f} s", flush=True)
            report(task, ours, reference, herding_num)


if __name__ == "__main__":
    main()
