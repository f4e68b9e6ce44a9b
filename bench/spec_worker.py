"""One measured spec generation, run in a fresh process by bench/spec_bench.py.

    python bench/spec_worker.py ours|reference table|image|text|text-rkme DATA OUT_JSON [STEPS]

DATA is a .npy (table, image; text: the sentences as a .npy of str, with
their MiniLM embeddings in DATA + ".embeddings.npy"). The reference cannot
download its embedding model here, so it always takes those embeddings;
text-rkme gives them to ours too (language detection + RKME only), text
runs ours end to end. Runs under our .venv (ours) or .bench-venv (the
reference package). Prints one JSON line: wall and CPU seconds of the
generation alone (imports, data loading and warm-up excluded) and the peak
resident memory it added. For ours on tables it also reports where the time went
(with the C kernels: k-means, the fit's states (data terms, kernel, beta), the rest;
without them: k-means++ seeding, Lloyd rounds, data terms, beta QP, the rest), the work the
fit did (multiply-adds and exponentials) and this process's float32 GEMM and exp
rates, measured after the fit, for the bench's lower bound.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
# Table warm-ups (both implementations, default arguments) fit this many rows: enough row blocks that
# the fit's worker threads start (ours: 1,024-row Lloyd blocks), so the timed fit does not pay for them.
TABLE_WARM_UP_ROWS = 2048


def status_mb(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, in MiB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> None:
    """Make VmHWM restart from the current RSS (Linux >= 4.0), so imports and warm-up do not count."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


class TableFitProbe:
    """Times the phases of lwm.spec's table fit and counts its arithmetic, by wrapping its functions."""

    def __init__(self) -> None:
        from lwm.spec import kmeans, rkme
        from lwm.spec.spec_kernels import SpecKernels

        self.seconds: dict[str, float] = defaultdict(float)  # wall
        self.cpu_seconds: dict[str, float] = defaultdict(float)
        self.macs = 0  # multiply-adds of the matrix products
        self.exps = 0  # kernel entries exponentiated
        # The C kernels' path: k-means (seeding, then the Lloyd rounds it reports) and each state of the fit
        # (z.x and, with_kx, the product kernel @ X: one or two K x n x d products, K x n exponentials).
        # The fit's products carry two more columns (the squared norms and ones); they are not counted.
        self._wrap(SpecKernels, "kmeans", "k-means", lambda result, kernels, rows, d, uniforms, seed_pool, sample, max_iter: (
            (len(seed_pool) + result[1] * (rows.shape[0] if sample is None else len(sample))) * d * len(uniforms), 0))
        self._wrap(SpecKernels, "fit_state", "data terms, kernel, beta", lambda result, kernels, rows, z, gamma, floor, with_kx, *_: (
            (2 if with_kx else 1) * rows.shape[0] * z.size, rows.shape[0] * z.shape[0]))
        # Both paths: the passes over the input before the fit, and the step directions between its states.
        self._wrap(rkme, "table_and_row_order", "input check and row order", lambda *_, **__: (0, 0))
        self._wrap(rkme._ReducedSetFit, "__init__", "gather", lambda *_, **__: (0, 0))
        self._wrap(rkme._ReducedSetFit, "descent_direction", "step directions", lambda *_, **__: (0, 0))
        # The numpy and torch path (LWM_SPEC_NATIVE=0).
        self._wrap(kmeans, "kmeans_plus_plus_indices", "k-means++ seeding", lambda result, X, k, gen: (X.shape[0] * X.shape[1] * k, 0))
        self._wrap(kmeans, "lloyd_assignment", "Lloyd rounds", lambda result, rows, C, buffers=None, sample=None: (len(rows if sample is None else sample) * C.shape[1] * C.shape[0], 0))
        self._wrap(rkme._ReducedSetFit, "_data_terms", "data terms",
                   lambda result, fit, z, with_kx: ((2 if with_kx else 1) * fit.num_rows * z.numel(), fit.num_rows * z.shape[0]))
        self._wrap(rkme, "solve_simplex_qp", "beta QP", lambda result, K, c, **_: (0, 0))

    def _wrap(self, owner: Any, name: str, phase: str, work: Callable[..., tuple[int, int]]) -> None:
        """Time owner.name as ``phase``; work(result, *args, **kwargs) is the (multiply-adds, exponentials) of a call."""
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started, cpu_started = time.perf_counter(), time.process_time()
            result = original(*args, **kwargs)
            self.seconds[phase] += time.perf_counter() - started
            self.cpu_seconds[phase] += time.process_time() - cpu_started
            macs, exps = work(result, *args, **kwargs)
            self.macs += macs
            self.exps += exps
            return result

        is_static = isinstance(inspect.getattr_static(owner, name), staticmethod)
        setattr(owner, name, staticmethod(timed) if is_static else timed)

    def reset(self) -> None:
        self.seconds.clear()
        self.cpu_seconds.clear()
        self.macs = self.exps = 0

    def report(self, wall_s: float, cpu_s: float) -> dict[str, Any]:
        phases = dict(self.seconds) | {"other": max(0.0, wall_s - sum(self.seconds.values()))}
        cpu = dict(self.cpu_seconds) | {"other": max(0.0, cpu_s - sum(self.cpu_seconds.values()))}
        return {"phases": phases, "phases_cpu": cpu, "macs": self.macs, "exps": self.exps}


def best_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def arithmetic_rates() -> dict[str, Any]:
    """This process's float32 rates for the bench's lower bound, best of several, on as many threads
    as torch has (the fit's): multiply-adds in a square 1024 matmul (the peak the fit's skinny
    products can approach) and exponentials of blocks that stay in cache, as the fit's kernel
    blocks do (a 16 MB array measures memory instead): the faster of torch's exp and the C
    kernels', run on one block per thread at once, when they are loaded."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from lwm.spec.rkme import FIT_KERNEL_ENTRIES
    from lwm.spec.spec_kernels import spec_kernels

    threads = torch.get_num_threads()
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    x = -10.0 * torch.rand(FIT_KERNEL_ENTRIES)  # exponents as the fit's: in [-10, 0], no subnormal results
    out = torch.empty_like(x)
    exp_rate = x.numel() / best_seconds(lambda: torch.exp(x, out=out), 50)
    kernels = spec_kernels()
    if kernels is not None:
        repeats = 20  # calls per thread per timing: a thread handoff costs about as much as one call
        blocks = [(x.numpy().copy(), np.empty(x.numel(), dtype=np.float32)) for _ in range(threads)]

        def exps_of(block: np.ndarray, result: np.ndarray) -> None:
            for _ in range(repeats):
                kernels.exp2_clamped(block, -100.0, result)

        with ThreadPoolExecutor(threads) as pool:  # ctypes releases the GIL: the blocks run at once

            def all_blocks() -> None:
                for done in [pool.submit(exps_of, block, result) for block, result in blocks]:
                    done.result()

            exp_rate = max(exp_rate, threads * repeats * x.numel() / best_seconds(all_blocks, 10))
    return {
        "gemm_rate": 1024**3 / best_seconds(lambda: torch.mm(a, b), 7),
        "exp_rate": exp_rate,
        "threads": threads,
    }


def ours(kind: str, data, steps: int | None, embeddings_path: str):
    from lwm.spec import generate_stat_spec

    if kind == "text-rkme":  # the reference's situation: embeddings given, no model run
        import lwm.spec.text

        embeddings = np.load(embeddings_path)
        lwm.spec.text.embed_sentences = lambda X, device="cpu", verbose=False: embeddings[: len(X)]
        kind = "text"
    if kind == "table":
        generate_stat_spec(kind, X=data[:TABLE_WARM_UP_ROWS], device="cpu")  # warm-up: imports, thread pools
    else:
        generate_stat_spec(kind, X=data[:50], device="cpu", steps=0)  # warm-up: imports, thread pools, the text model
    kwargs = {} if steps is None else {"steps": steps}
    return lambda: generate_stat_spec(kind, X=data, device="cpu", **kwargs)


def reference(kind: str, data, steps: int | None, embeddings_path: str):
    from learnware.specification import RKMEImageSpecification, RKMETextSpecification, generate_stat_spec

    sys.path.insert(0, os.path.join(BENCH_DIR, "reference_shim"))  # after importing learnware
    if kind == "table":
        generate_stat_spec(type="table", X=data[:TABLE_WARM_UP_ROWS].copy(), cuda_idx=-1)  # warm-up
        return lambda: generate_stat_spec(type="table", X=data.copy(), cuda_idx=-1)
    if kind == "image":

        def make_image_spec():
            spec = RKMEImageSpecification(cuda_idx=-1)
            spec.generate_stat_spec_from_data(data, steps=100 if steps is None else steps, verbose=False)
            return spec

        return make_image_spec
    embeddings = np.load(embeddings_path)
    RKMETextSpecification.get_sentence_embedding = staticmethod(lambda X: embeddings[: len(X)])

    def make_text_spec():
        spec = RKMETextSpecification(cuda_idx=-1)
        spec.generate_stat_spec_from_data(list(data))
        return spec

    return make_text_spec


def main() -> None:
    impl, kind, data_path, out_path = sys.argv[1:5]
    steps = int(sys.argv[5]) if len(sys.argv) > 5 else None
    data = np.load(data_path, allow_pickle=False)
    if kind.startswith("text"):
        data = [str(s) for s in data]
    embeddings_path = data_path + ".embeddings.npy"
    probe = TableFitProbe() if impl == "ours" and kind == "table" else None
    make = ours(kind, data, steps, embeddings_path) if impl == "ours" else reference(kind, data, steps, embeddings_path)
    if probe:
        probe.reset()  # forget the warm-up
    reset_peak_rss()
    before = status_mb("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    spec = make()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_extra = status_mb("VmHWM") - before
    spec.save(out_path)
    result = {"wall_s": wall, "cpu_s": cpu, "peak_extra_mb": max(0.0, peak_extra)}
    if probe:
        result |= probe.report(wall, cpu) | arithmetic_rates()  # rates after the fit: measuring first would warm its allocator
    print(json.dumps(result))


if __name__ == "__main__":
    main()
