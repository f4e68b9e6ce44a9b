"""Specifications: lwm.spec against the reference `learnware` package, same data, same run.

    .venv/bin/python bench/spec_bench.py                 # every case
    .venv/bin/python bench/spec_bench.py --cases table   # table | image | text, comma-separated

Creates the reference's venv (.bench-venv: learnware==0.4.0.post1 with
torch==2.13.0, fast_pytorch_kmeans, lightgbm, osqp, torch-optimizer) when it
is missing. Each generation runs in a fresh process (bench/spec_worker.py);
the table gives wall and CPU seconds, the peak memory the generation added,
and the squared MMD between the spec and the data it summarises (computed
here, exactly, with lwm.spec's kernels: Gaussian gamma=0.1 for table and
text embeddings, the ConvNet NNGP kernel in the whitened space for images).

Cases (synthetic data from tests/fixtures/spec_fixture_data.py):
  table (n, d) in (1,000, 10), (10,000, 50), (100,000, 20): clustered, standardised
  image 2,000 x 3x32x32 (coloured blobs). The reference's image spec takes
      100 steps, each computing 16 random ConvNets' features of every image:
      hours on this CPU. It runs on the first --reference-image-n images for 1
      and 2 steps; the table shows both, ours on the same images, and an
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
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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
IMAGE_N = 2_000
TEXT_N = 2_000
GAMMA = 0.1
REFERENCE_IMAGE_DEFAULT_STEPS = 100


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    peak_extra_mb: float
    mmd: float


def run_worker(python: Path, impl: str, kind: str, data: Path, out: Path, steps: int | None, home: str) -> dict:
    cmd = [str(python), str(ROOT / "bench" / "spec_worker.py"), impl, kind, str(data), str(out)]
    if steps is not None:
        cmd.append(str(steps))
    env = {**os.environ, "HOME": home, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=ROOT)
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


# ----- cases -------------------------------------------------------------------
def measure(python: Path, impl: str, kind: str, data: Path, work: Path, steps: int | None, mmd_of) -> Run:
    out = work / f"{impl}-{kind}-{data.stem}-{steps}.json"
    r = run_worker(python, impl, kind, data, out, steps, str(work / "home"))
    return Run(r["wall_s"], r["cpu_s"], r["peak_extra_mb"], mmd_of(load_stat_spec(out, device="cpu")))


def table_cases(ref_python: Path, work: Path) -> list[tuple[str, Run, Run | None, str]]:
    rows = []
    for n, d in TABLE_CASES:
        X = clustered_table(n, d, seed=n + d)
        path = work / f"table_{n}_{d}.npy"
        np.save(path, X)
        started = time.perf_counter()
        data_term = gaussian_mean_kernel(torch.from_numpy(X))
        print(f"  data term for {n} x {d}: {time.perf_counter() - started:.0f} s", flush=True)

        def mmd_of(spec, X=X, data_term=data_term):
            return gaussian_mmd(spec.get_z(), spec.get_beta(), X, data_term)

        ours = measure(Path(sys.executable), "ours", "table", path, work, None, mmd_of)
        ref = measure(ref_python, "reference", "table", path, work, None, mmd_of)
        rows.append((f"table {n:,} x {d}", ours, ref, ""))
        print_row(*rows[-1])
    return rows


def image_cases(ref_python: Path, work: Path, reference_n: int) -> list[tuple[str, Run, Run | None, str]]:
    images = blob_images(IMAGE_N, seed=11)
    rows = []
    note = ""
    for n in (reference_n, IMAGE_N):
        subset = images[:n]
        path = work / f"image_{n}.npy"
        np.save(path, subset)
        W = standardise_and_whiten(images_to_tensor(subset)).double()
        started = time.perf_counter()
        data_term = nngp_mean_kernel(W)
        print(f"  data term for {n} images: {time.perf_counter() - started:.0f} s", flush=True)

        def mmd_of(spec, W=W, data_term=data_term):
            return nngp_mmd(spec, W, data_term)

        ours = measure(Path(sys.executable), "ours", "image", path, work, None, mmd_of)
        if n == reference_n:
            one = measure(ref_python, "reference", "image", path, work, 1, mmd_of)
            two = measure(ref_python, "reference", "image", path, work, 2, mmd_of)
            per_step = max(0.0, two.wall_s - one.wall_s)
            setup = max(0.0, one.wall_s - per_step)
            rows.append((f"image {n:,} (ref 1 step)", ours, one, ""))
            print_row(*rows[-1])
            rows.append((f"image {n:,} (ref 2 steps)", ours, two, ""))
            print_row(*rows[-1])
            full = setup + REFERENCE_IMAGE_DEFAULT_STEPS * per_step * IMAGE_N / n
            note = f"reference at 100 steps extrapolated: ~{full / 3600:.1f} h ({per_step:.0f} s/step at {n} images)"
        else:
            rows.append((f"image {n:,}", ours, None, note))
            print_row(*rows[-1])
    return rows


def text_cases(ref_python: Path, work: Path) -> list[tuple[str, Run, Run | None, str]]:
    sentences = synthetic_sentences(TEXT_N, seed=5)
    path = work / "text.npy"
    np.save(path, np.array(sentences))
    embeddings = embed_sentences(sentences)
    np.save(str(path) + ".embeddings.npy", embeddings)
    data_term = gaussian_mean_kernel(torch.from_numpy(embeddings))

    def mmd_of(spec):
        return gaussian_mmd(spec.get_z(), spec.get_beta(), embeddings, data_term)

    same_input = measure(Path(sys.executable), "ours", "text-rkme", path, work, None, mmd_of)
    ref = measure(ref_python, "reference", "text", path, work, None, mmd_of)
    end_to_end = measure(Path(sys.executable), "ours", "text", path, work, None, mmd_of)
    rows = [
        (f"text {TEXT_N:,} (embedded)", same_input, ref, "both: language detection + RKME on the same MiniLM embeddings"),
        (f"text {TEXT_N:,} (end to end)", end_to_end, None, "ours with MiniLM embedding; the reference cannot embed offline"),
    ]
    for row in rows:
        print_row(*row)
    return rows


# ----- report --------------------------------------------------------------------
HEADER = (
    f"{'case':<26} {'impl':<5} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} {'MMD^2 to data':>14}  {'speed-up':>8} {'MMD ratio':>9}"
)


def print_row(case: str, ours: Run, ref: Run | None, note: str) -> None:
    def line(impl: str, run: Run, extra: str = "") -> str:
        return f"{case:<26} {impl:<5} {run.wall_s:>8.2f} {run.cpu_s:>8.2f} {run.peak_extra_mb:>8.0f} {run.mmd:>14.3e}  {extra}"

    print(line("ours", ours, f"{ref.wall_s / ours.wall_s:>7.1f}x {ours.mmd / ref.mmd:>9.3g}" if ref else ""))
    if ref:
        print(line("ref", ref))
    if note:
        print(f"{'':<26} note: {note}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="table,image,text", help="comma-separated: table, image, text")
    parser.add_argument("--reference-image-n", type=int, default=100, help="images the reference's image spec runs on")
    args = parser.parse_args()
    cases = {c.strip() for c in args.cases.split(",") if c.strip()}
    ref_python = ensure_reference_venv()
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    print("speed-up = reference wall / ours wall; MMD ratio = ours / reference (lower is better)")
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="spec-bench-") as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        if "table" in cases:
            table_cases(ref_python, work)
        if "image" in cases:
            image_cases(ref_python, work, args.reference_image_n)
        if "text" in cases:
            text_cases(ref_python, work)
    print(f"load average at end {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
