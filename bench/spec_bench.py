"""Specifications: lwm.spec against the reference `learnware` package, same data, runs interleaved.

    .venv/bin/python bench/spec_bench.py --quick         # headline: table 10,000 x 50 and 100,000 x 20, 3 rounds (~3 min quiet)
    .venv/bin/python bench/spec_bench.py                 # every case
    .venv/bin/python bench/spec_bench.py --cases table   # table | image | text, comma-separated

The reference runs in its own venv: $LWM_REFERENCE_PYTHON when set (a python with
learnware==0.4.0.post1 installed), else .bench-venv, created when missing
(learnware==0.4.0.post1 with torch==2.13.0, fast_pytorch_kmeans, lightgbm, osqp,
torch-optimizer). Each generation runs in a fresh process (bench/spec_worker.py:
imports and a warm-up are not timed) and the two implementations alternate run by
run (ours first in odd rounds, the reference first in even ones), so a change in
the machine's load hits both. Every run is printed: wall and CPU seconds, the peak
memory the generation added, and the squared MMD between the spec and the data it
summarises (computed here, exactly, with lwm.spec's kernels: Gaussian gamma=0.1 for
table and text embeddings, the ConvNet NNGP kernel in the whitened space for
images). Each case ends with the median of the per-round speed-ups (reference wall /
ours wall). That headline is printed only on a quiet machine: 1-minute load average
at most 1.0 before the case (a case first waits up to 3 minutes for it) and other processes using at most 1.0 core on average
while it ran (from /proc/stat minus this bench's own processes); otherwise the runs
are shown and the case says the machine was loaded.

Table cases also print a lower bound for ours: the multiply-adds of the products the
fit took (k-means++ seeding, Lloyd rounds, two K x n x d products per data-term
evaluation, one after the last step; counted in the worker) at this machine's float32
GEMM rate (a square torch matmul), plus the kernel exponentials at the rate of the
faster of torch.exp and lwm.spec's C kernel on a cache-sized block (a block per thread,
on the fit's thread count), both measured in each run's own process right after its fit (so
rate and fit see the same state of the machine), each run's ratio to its own bound
and their median; and where our time went, phase by phase. On a shared machine run it with OMP_NUM_THREADS=1 (the rates and the fits then
take one thread) and read the CPU ratio: wall time measures the load.

Cases (synthetic data from tests/fixtures/spec_fixture_data.py):
  table (n, d) in (1,000, 10), (10,000, 50), (100,000, 20): Gaussian clusters in an 8-D
      latent space mapped to d columns, float64, standardised
  image 2,000 x 3x32x32 (coloured blobs). The reference's image spec takes
      100 steps, each computing 16 random ConvNets' features of every image:
      hours on this CPU. It runs on the first --reference-image-n images for 1
      and 2 steps, one round; the table shows both, ours on the same images, and an
      extrapolation to 2,000 images and 100 steps (setup + 100 x per-step x N ratio).
  text 2,000 sentences. The reference embeds with a model it downloads from
      a hub (no network here): it gets our MiniLM embeddings instead. One row
      gives ours the same embeddings (language detection + RKME on both
      sides), one row runs ours end to end (embedding included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from reference_venv import ensure_reference_venv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from spec_fixture_data import blob_images, clustered_table, synthetic_sentences  # noqa: E402

from lwm.spec import RKMEImageSpecification, load_stat_spec  # noqa: E402
from lwm.spec.image import images_to_tensor, standardise_and_whiten  # noqa: E402
from lwm.spec.nngp import convnet_nngp_kernel  # noqa: E402
from lwm.spec.text import embed_sentences  # noqa: E402

TABLE_CASES = [(1_000, 10), (10_000, 50), (100_000, 20)]
HEADLINE_TABLE_CASES = [(10_000, 50), (100_000, 20)]
IMAGE_N = 2_000
TEXT_N = 2_000
GAMMA = 0.1
REFERENCE_IMAGE_DEFAULT_STEPS = 100
QUIET_LOAD = 1.0  # above this 1-minute load (or this many cores used by others) no headline ratio
SETTLE_MAX_S = 180.0  # how long a case waits for the load average to come down to QUIET_LOAD


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    peak_extra_mb: float
    mmd: float
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds per phase (ours, tables)
    phases_cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per phase
    macs: int = 0
    exps: int = 0
    gemm_rate: float = 0.0  # float32 multiply-adds per second, measured in the run's process after the fit
    exp_rate: float = 0.0  # float32 exponentials per second, likewise
    threads: int = 0  # torch's threads in the run's process


# ----- machine load -------------------------------------------------------------
def busy_cpu_seconds() -> float:
    """CPU seconds all processes on this machine have used since boot (/proc/stat, idle and iowait excluded)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def settled_load() -> float:
    """The 1-minute load average once it is at most QUIET_LOAD, or after SETTLE_MAX_S.

    The average lags by about a minute, so right after this bench's own exact MMD of a big
    case it still counts that work: wait for it to decay rather than call the machine loaded.
    """
    waited = 0.0
    while (load := os.getloadavg()[0]) > QUIET_LOAD and waited < SETTLE_MAX_S:
        if waited == 0.0:
            print(f"  (load {load:.2f}: waiting up to {SETTLE_MAX_S:.0f} s for it to settle)", flush=True)
        time.sleep(5.0)
        waited += 5.0
    return load


class LoadWatch:
    """Load around one case: 1-minute load average before and after, and the cores other processes used meanwhile."""

    def __init__(self) -> None:
        self.load_before = settled_load()
        self._wall, self._busy, self._own = time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds()
        self.load_after = self.others_cores = 0.0

    def stop(self) -> LoadWatch:
        self.load_after = os.getloadavg()[0]
        others = (busy_cpu_seconds() - self._busy) - (own_cpu_seconds() - self._own)
        self.others_cores = max(0.0, others / (time.perf_counter() - self._wall))
        return self

    @property
    def quiet(self) -> bool:
        return self.load_before <= QUIET_LOAD and self.others_cores <= QUIET_LOAD

    def label(self) -> str:
        return (f"load {self.load_before:.2f} before, {self.load_after:.2f} after (1 min; includes this bench), "
                f"other processes {self.others_cores:.2f} cores during the runs: {'quiet' if self.quiet else 'loaded'}")


def run_worker(python: Path, impl: str, kind: str, data: Path, out: Path, steps: int | None, home: str) -> dict:
    cmd = [str(python), str(ROOT / "bench" / "spec_worker.py"), impl, kind, str(data), str(out)]
    if steps is not None:
        cmd.append(str(steps))
    env = {**os.environ, "HOME": home, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{impl} {kind} worker failed ({python}, exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----- exact squared MMD between a spec and its data --------------------------
def gaussian_mean_kernel(X: torch.Tensor, block: int = 4096) -> float:
    """mean_{x, x'} exp(-gamma ||x - x'||^2) over all pairs, by symmetric blocks.

    Kernel values in float32 (relative error ~1e-6, far below the MMD
    differences reported), sums in float64.
    """
    X = X.to(torch.float32)
    n = X.shape[0]
    sq = (X * X).sum(1)
    total = 0.0
    for i in range(0, n, block):
        for j in range(i, n, block):
            d = torch.addmm(sq[i : i + block, None] + sq[None, j : j + block], X[i : i + block], X[j : j + block].T, alpha=-2.0)
            s = float(d.clamp_min_(0.0).mul_(-GAMMA).exp_().sum(dtype=torch.float64))
            total += s if i == j else 2.0 * s
    return total / (n * n)


def gaussian_mmd(z: np.ndarray, beta: np.ndarray, X: np.ndarray, data_term: float) -> float:
    zt, bt, Xt = torch.from_numpy(z), torch.from_numpy(beta), torch.from_numpy(X)
    from lwm.spec.kernels import rbf_kernel

    cross = sum(float((bt @ rbf_kernel(zt, Xt[s : s + 20_000], GAMMA)).sum()) for s in range(0, len(Xt), 20_000))
    return float(bt @ rbf_kernel(zt, zt, GAMMA) @ bt) - 2.0 * cross / len(Xt) + data_term


def nngp_mean_kernel(W: torch.Tensor, block: int = 100) -> float:
    """mean_{x, x'} k_NNGP(x, x') over all pairs, by symmetric blocks, kernel in float32 as the reference."""
    W = W.to(torch.float32)
    n = W.shape[0]
    total = 0.0
    for i in range(0, n, block):
        for j in range(i, n, block):
            s = float(convnet_nngp_kernel(W[i : i + block], W[j : j + block]).sum(dtype=torch.float64))
            total += s if i == j else 2.0 * s
    return total / (n * n)


def nngp_mmd(spec: RKMEImageSpecification, W: torch.Tensor, data_term: float) -> float:
    z = torch.from_numpy(spec.get_z()).double()
    beta = torch.from_numpy(spec.get_beta())
    cross = float(beta @ convnet_nngp_kernel(z, W).mean(1))
    return float(beta @ convnet_nngp_kernel(z, z) @ beta) - 2.0 * cross + data_term


# ----- runs and report -------------------------------------------------------------
def measure(python: Path, impl: str, kind: str, data: Path, work: Path, steps: int | None, mmd_of) -> Run:
    out = work / f"{impl}-{kind}-{data.stem}-{steps}.json"
    r = run_worker(python, impl, kind, data, out, steps, str(work / "home"))
    spec = load_stat_spec(out, device="cpu")
    return Run(r["wall_s"], r["cpu_s"], r["peak_extra_mb"], mmd_of(spec), r.get("phases", {}), r.get("phases_cpu", {}), r.get("macs", 0), r.get("exps", 0),
               r.get("gemm_rate", 0.0), r.get("exp_rate", 0.0), r.get("threads", 0))


def print_run(case: str, label: str, run: Run) -> None:
    print(f"  {case:<30} {label:<12} {run.wall_s:>8.3f} {run.cpu_s:>8.3f} {run.peak_extra_mb:>8.0f} {run.mmd:>14.4e}", flush=True)


def interleaved(case: str, rounds: int, ours: Callable[[], Run], ref: Callable[[], Run]) -> tuple[list[Run], list[Run], LoadWatch]:
    """``rounds`` runs of each, alternating; ours first in odd rounds, the reference first in even ones."""
    watch = LoadWatch()
    ours_runs: list[Run] = []
    ref_runs: list[Run] = []
    for r in range(rounds):
        order = [("ours", ours, ours_runs), ("reference", ref, ref_runs)]
        for impl, make, runs in order if r % 2 == 0 else order[::-1]:
            runs.append(make())
            print_run(case, f"{impl} #{r + 1}", runs[-1])
    return ours_runs, ref_runs, watch.stop()


def summarise(case: str, ours_runs: list[Run], ref_runs: list[Run], watch: LoadWatch) -> None:
    """Print medians, per-round speed-ups and the headline (or why there is none)."""
    ratios = [r.wall_s / o.wall_s for o, r in zip(ours_runs, ref_runs, strict=True)]
    median = statistics.median(ratios)
    ours_mmd, ref_mmd = statistics.median(r.mmd for r in ours_runs), statistics.median(r.mmd for r in ref_runs)
    print(f"  {case}: ours {statistics.median(r.wall_s for r in ours_runs):.3f} s, reference "
          f"{statistics.median(r.wall_s for r in ref_runs):.3f} s (medians); speed-up per round "
          + ", ".join(f"{x:.1f}x" for x in ratios))
    print(f"    MMD^2 to data: ours {ours_mmd:.4e}, reference {ref_mmd:.4e} (ours / reference {ours_mmd / ref_mmd:.3g})")
    print(f"    {watch.label()}")
    if watch.quiet:
        print(f"    HEADLINE {case}: {median:.1f}x the reference (median of {len(ratios)} interleaved rounds)")
    else:
        worst = max(watch.load_before, watch.others_cores)
        print(f"    machine loaded (load {worst:.2f}): re-run on a quiet machine (median of these rounds {median:.1f}x, not a headline)")
    sys.stdout.flush()


def print_bound(ours_runs: list[Run]) -> None:
    """Our median run against the time its arithmetic needs at the rates measured in its process, and its phases."""
    run = sorted(ours_runs, key=lambda r: r.wall_s)[len(ours_runs) // 2]
    gemm_s = run.macs / run.gemm_rate
    exp_s = run.exps / run.exp_rate
    per_run = [r.wall_s / (r.macs / r.gemm_rate + r.exps / r.exp_rate) for r in ours_runs]
    ratios = ", ".join(f"{ratio:.1f}x" for ratio in per_run)
    print(f"    lower bound (ours, median run; rates measured in its process, on {run.threads} thread(s)): {run.macs:.3g} multiply-adds at "
          f"{run.gemm_rate / 1e9:.0f} GMAC/s = {gemm_s * 1e3:.1f} ms; with {run.exps:.3g} exponentials at {run.exp_rate / 1e9:.2f} G/s = "
          f"{(gemm_s + exp_s) * 1e3:.1f} ms. ours {run.wall_s * 1e3:.1f} ms wall = {run.wall_s / gemm_s:.1f}x the GEMM bound, "
          f"{run.wall_s / (gemm_s + exp_s):.1f}x GEMM + exp (every run: {ratios}); {run.cpu_s * 1e3:.1f} ms CPU = "
          f"{run.cpu_s / (gemm_s + exp_s):.1f}x GEMM + exp (the CPU ratio is the one to read on a loaded machine, with OMP_NUM_THREADS=1)")
    gemm_only = statistics.median(r.wall_s / (r.macs / r.gemm_rate) for r in ours_runs)
    print(f"    ours / bound, the median of the runs' own ratios (each run against the rates of its own process): "
          f"{statistics.median(per_run):.2f}x GEMM + exp, {gemm_only:.2f}x the GEMM bound")
    print("    ours, where the time went (wall / CPU ms): " + ", ".join(
        f"{name} {s * 1e3:.1f} / {run.phases_cpu.get(name, 0.0) * 1e3:.1f}" for name, s in run.phases.items()))


def table_cases(ref_python: Path, work: Path, sizes: list[tuple[int, int]], rounds: int) -> None:
    for n, d in sizes:
        X = clustered_table(n, d, seed=n + d)
        path = work / f"table_{n}_{d}.npy"
        np.save(path, X)
        started = time.perf_counter()
        data_term = gaussian_mean_kernel(torch.from_numpy(X))
        print(f"  (data term for {n:,} x {d}: {time.perf_counter() - started:.0f} s)", flush=True)

        def mmd_of(spec, X=X, data_term=data_term):
            return gaussian_mmd(spec.get_z(), spec.get_beta(), X, data_term)

        case = f"table {n:,} x {d}"
        ours_runs, ref_runs, watch = interleaved(
            case, rounds,
            lambda: measure(Path(sys.executable), "ours", "table", path, work, None, mmd_of),
            lambda: measure(ref_python, "reference", "table", path, work, None, mmd_of),
        )
        summarise(case, ours_runs, ref_runs, watch)
        print_bound(ours_runs)


def image_cases(ref_python: Path, work: Path, reference_n: int) -> None:
    images = blob_images(IMAGE_N, seed=11)
    for n in (reference_n, IMAGE_N):
        subset = images[:n]
        path = work / f"image_{n}.npy"
        np.save(path, subset)
        W = standardise_and_whiten(images_to_tensor(subset)).double()
        started = time.perf_counter()
        data_term = nngp_mean_kernel(W)
        print(f"  (data term for {n} images: {time.perf_counter() - started:.0f} s)", flush=True)

        def mmd_of(spec, W=W, data_term=data_term):
            return nngp_mmd(spec, W, data_term)

        if n != reference_n:
            watch = LoadWatch()
            print_run(f"image {n:,}", "ours", measure(Path(sys.executable), "ours", "image", path, work, None, mmd_of))
            print(f"    {watch.stop().label()}; the reference: not run (hours at its 100 steps)")
            continue
        # One round: ours, the reference at 1 step, at 2 steps (minutes each).
        watch = LoadWatch()
        ours = measure(Path(sys.executable), "ours", "image", path, work, None, mmd_of)
        print_run(f"image {n:,}", "ours", ours)
        one = measure(ref_python, "reference", "image", path, work, 1, mmd_of)
        print_run(f"image {n:,}", "ref 1 step", one)
        two = measure(ref_python, "reference", "image", path, work, 2, mmd_of)
        print_run(f"image {n:,}", "ref 2 steps", two)
        watch.stop()
        per_step = max(0.0, two.wall_s - one.wall_s)
        setup = max(0.0, one.wall_s - per_step)
        full = setup + REFERENCE_IMAGE_DEFAULT_STEPS * per_step * IMAGE_N / n
        print(f"    speed-up vs the reference's 1 step {one.wall_s / ours.wall_s:.1f}x, 2 steps {two.wall_s / ours.wall_s:.1f}x "
              f"(one round; MMD ours / reference at 2 steps {ours.mmd / two.mmd:.3g}); reference at its 100 steps extrapolated: "
              f"~{full / 3600:.1f} h ({per_step:.0f} s/step at {n} images)")
        print(f"    {watch.label()}")


def text_cases(ref_python: Path, work: Path, rounds: int) -> None:
    sentences = synthetic_sentences(TEXT_N, seed=5)
    path = work / "text.npy"
    np.save(path, np.array(sentences))
    embeddings = embed_sentences(sentences)
    np.save(str(path) + ".embeddings.npy", embeddings)
    data_term = gaussian_mean_kernel(torch.from_numpy(embeddings))

    def mmd_of(spec):
        return gaussian_mmd(spec.get_z(), spec.get_beta(), embeddings, data_term)

    case = f"text {TEXT_N:,} (same embeddings)"
    ours_runs, ref_runs, watch = interleaved(
        case, rounds,
        lambda: measure(Path(sys.executable), "ours", "text-rkme", path, work, None, mmd_of),
        lambda: measure(ref_python, "reference", "text", path, work, None, mmd_of),
    )
    summarise(case, ours_runs, ref_runs, watch)
    watch = LoadWatch()
    print_run(f"text {TEXT_N:,} (end to end)", "ours", measure(Path(sys.executable), "ours", "text", path, work, None, mmd_of))
    print(f"    ours with MiniLM embedding (the reference cannot embed offline); {watch.stop().label()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="table,image,text", help="comma-separated: table, image, text")
    parser.add_argument("--quick", action="store_true", help="the headline only: table 10,000 x 50 and 100,000 x 20")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per table and text case")
    parser.add_argument("--reference-image-n", type=int, default=100, help="images the reference's image spec runs on")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    cases = {"table"} if args.quick else {c.strip() for c in args.cases.split(",") if c.strip()}
    ref_python = ensure_reference_venv()
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          "load average at start {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg()))
    print("speed-up = reference wall / ours wall, per round; MMD ratio = ours / reference (lower is better)")
    print(f"  {'case':<30} {'run':<12} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} {'MMD^2 to data':>14}", flush=True)
    with tempfile.TemporaryDirectory(prefix="spec-bench-") as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        if "table" in cases:
            table_cases(ref_python, work, HEADLINE_TABLE_CASES if args.quick else TABLE_CASES, args.rounds)
        if "image" in cases:
            image_cases(ref_python, work, args.reference_image_n)
        if "text" in cases:
            text_cases(ref_python, work, args.rounds)
    print("load average at end {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
